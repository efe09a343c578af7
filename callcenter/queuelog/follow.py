"""Following Asterisk's queue_log as it grows, across rotation and truncation.

``QueueLogFollower`` reads complete lines from a remembered position, at most
``chunk`` bytes per call (the caller polls from a timer, so a day-long file is
read over many reactor turns, never in one blocking gulp).  ``read()`` does
not move the position; ``consume(end)`` does, so the caller decides which
lines it is done with (and persists ``position`` with the state they changed).

What it copes with:

- a partial last line (Asterisk mid-write): not returned until its newline;
- rotation (the file renamed, a new one created at the path): the open
  descriptor is read to its end first, then the new file from 0; after a
  restart a saved position whose fingerprint is that of ``<path>.1`` resumes
  there;
- truncation (size below the position): read again from 0, with a warning;
- a file replaced by another of the same size (or any size): the position
  carries a fingerprint of the file's first line, checked on every read;
- garbage lines (not ``time|callid|queue|agent|EVENT|…``, too long, not
  UTF-8): returned as ``Line(None, end)`` so they are consumed, logged at
  most once a minute per kind with a count.
"""

from __future__ import annotations

import errno
import hashlib
import os
from typing import Any, NamedTuple

from twisted.logger import Logger

from callcenter.logthrottle import LogThrottle
from callcenter.queuelog.entries import MAX_LINE, Entry, Invalid, parse_line

log = Logger()

#: Bytes read per call (a poll): bounds the time one reactor turn spends here.
CHUNK = 256 * 1024
ROTATED_SUFFIX = ".1"


class Position(NamedTuple):
    offset: int
    fingerprint: str  # of the file's first line; "" while it has no complete line


class Line(NamedTuple):
    entry: Entry | None  # None: not a queue_log line (logged)
    end: int  # the offset just past this line's newline


def fingerprint(first_line: bytes) -> str:
    return hashlib.sha256(first_line).hexdigest()[:32]


class QueueLogFollower:
    def __init__(
        self,
        path: str,
        *,
        chunk: int = CHUNK,
        max_line: int = MAX_LINE,
        clock: Any = None,
        rotated_suffix: str = ROTATED_SUFFIX,
    ) -> None:
        if chunk <= max_line:
            raise ValueError("chunk must be larger than max_line")
        self.path = path
        self.chunk = chunk
        self.max_line = max_line
        self.rotated_suffix = rotated_suffix
        self._throttle = LogThrottle(log, clock)
        self._fd: int | None = None
        self._id: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self._offset = 0
        self._fp = ""
        self._skipping = False  # inside an over-long line: drop up to its newline
        self._missing_logged = False
        self.garbage = 0  # lines skipped (for tests and diagnostics)
        self.resets = 0  # truncations and replacements seen

    # ------------------------------------------------------------ position

    @property
    def position(self) -> Position:
        return Position(self._offset, self._fp)

    def restore(self, saved: Position | None) -> None:
        """Start from a saved position (None: the start of the current file)."""
        self.close()
        if saved is None:
            return
        for candidate in (self.path, self.path + self.rotated_suffix):
            fd = self._open(candidate)
            if fd is None:
                continue
            first = self._first_line(fd)
            size = os.fstat(fd).st_size
            if first is not None and fingerprint(first) == saved.fingerprint and size >= saved.offset:
                self._adopt(fd, saved.offset, saved.fingerprint)
                if candidate != self.path:
                    log.info("queue log: resuming in the rotated {p}", p=candidate)
                return
            os.close(fd)
        if saved.offset:
            log.warn(
                "queue log {p} is not the file last read (replaced, truncated or rotated "
                "twice): reading it from the start",
                p=self.path,
            )
            self.resets += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._id, self._offset, self._fp, self._skipping = None, None, 0, "", False

    # ------------------------------------------------------------ reading

    def read(self) -> list[Line]:
        """Complete lines from the position on (at most ``chunk`` bytes); [] when none."""
        if self._fd is None:
            fd = self._open(self.path)
            if fd is None:
                return []
            self._adopt(fd, 0, "")
        assert self._fd is not None
        lines = self._read_fd()
        if lines or not self._path_moved():
            return lines
        # The path names another file now (rotated) and ours has no whole line left.
        rest = os.fstat(self._fd).st_size - self._offset
        if rest > 0:
            self._throttle.warn(
                "queuelog-torn", "queue log: {n} bytes after the last newline of the rotated "
                "file were never completed; skipped", n=rest,
            )
        log.info("queue log {p} was rotated: following the new file", p=self.path)
        self.close()
        return self.read()

    def consume(self, end: int) -> None:
        if end > self._offset:
            self._offset = end

    def _read_fd(self) -> list[Line]:
        fd = self._fd
        assert fd is not None
        size = os.fstat(fd).st_size
        first = self._first_line(fd)
        now_fp = fingerprint(first) if first is not None else ""
        if size < self._offset or (self._fp and now_fp != self._fp):
            what = "truncated" if size < self._offset else "replaced by another file"
            log.warn("queue log {p} was {what}: reading it from the start", p=self.path, what=what)
            self.resets += 1
            self._offset, self._skipping = 0, False
        self._fp = now_fp
        if size <= self._offset:
            return []
        data = os.pread(fd, self.chunk, self._offset)
        out: list[Line] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            end = self._offset + nl + 1
            raw = data[start:nl]
            start = nl + 1
            if self._skipping:
                self._skipping = False
                out.append(Line(None, end))
                continue
            out.append(Line(self._parse(raw), end))
        if len(data) - start > self.max_line:
            # No newline within max_line bytes: junk.  Consume it and drop
            # whatever follows up to the next newline.
            if not self._skipping:
                self._garbage("line too long")
            self._skipping = True
            out.append(Line(None, self._offset + len(data)))
        return out

    def _parse(self, raw: bytes) -> Entry | None:
        if not raw.strip():
            return None
        try:
            return parse_line(raw)
        except Invalid as e:
            self._garbage(str(e))
            return None

    def _garbage(self, why: str) -> None:
        self.garbage += 1
        self._throttle.warn("queuelog-garbage", "queue log {p}: skipped a bad line ({why})", p=self.path, why=why)

    # ------------------------------------------------------------ files

    def _open(self, path: str) -> int | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if not self._missing_logged:
                self._missing_logged = True
                why = "does not exist yet" if e.errno == errno.ENOENT else e.strerror
                log.warn("queue log {p} cannot be read ({why}); retrying", p=path, why=why)
            return None
        self._missing_logged = False
        return fd

    def _adopt(self, fd: int, offset: int, fp: str) -> None:
        st = os.fstat(fd)
        self._fd, self._id, self._offset, self._fp, self._skipping = fd, (st.st_dev, st.st_ino), offset, fp, False

    def _first_line(self, fd: int) -> bytes | None:
        head = os.pread(fd, self.max_line + 1, 0)
        nl = head.find(b"\n")
        return head[:nl] if nl >= 0 else None

    def _path_moved(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return False  # moved away, not recreated yet: keep reading ours
        return (st.st_dev, st.st_ino) != self._id


__all__ = ["CHUNK", "Line", "Position", "QueueLogFollower", "fingerprint"]
