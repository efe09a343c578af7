"""The report file: one ``;``-separated line per status change, appended and flushed.

Columns (DESIGN.md): local time the status began, CALL/AGENT, caller id number
or agent id, the status that just ended, whole seconds spent in it, queue,
the call's Asterisk unique id (empty for agents), and the pause reason of an
agent's PAUSED period (empty on every other line).  The file is opened for
append, never truncated; it is reopened on SIGHUP (logrotate) and when it has
been moved or deleted under us.

A line is either wholly in the file or not at all: writes go straight to the
descriptor (no stdio buffer), a write cut short (a full disk) is cut back to
the last whole line, and a torn last line left by a kill or a crash is moved
aside to ``<report>.torn`` when the file is opened, so the next line never
glues onto it.  ``write_lines`` says how many lines made it (optionally
``fsync``ed); the caller keeps the rest and retries (the Redis store holds
them in its outbox, see docs/reliability.md).
"""

from __future__ import annotations

import errno
import math
import os
import re
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any, NamedTuple

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger

log = Logger()


class Transition(NamedTuple):
    """A status that ended: what the report file records.  (A NamedTuple: one
    is made per status change, and a frozen dataclass's ``__init__`` costs
    about three times as much.)"""

    kind: str  # CALL or AGENT
    ident: str  # caller id number, or agent id
    status: str  # the status that ended
    began: float  # Unix time it began
    duration: int  # whole seconds spent in it
    queue: str
    uniqueid: str = ""  # the call's Asterisk Uniqueid; empty for agents
    reason: str = ""  # the pause reason of an agent's PAUSED period; empty otherwise

    def line(self, tz: tzinfo | None = None) -> str:
        fields = (
            _stamp(self.began, tz),
            self.kind,
            self.ident,
            self.status,
            str(self.duration),
            self.queue,
            self.uniqueid,
            self.reason,
        )
        line = ";".join(fields)
        # The report is ';'-separated with no quoting: keep separators and
        # line breaks that came from the PBX out of it (checked on the joined
        # line first: one field holding any is rare).
        if line.count(";") != 7 or "\n" in line or "\r" in line:
            line = ";".join(_clean(f) for f in fields)
        return line + "\n"


# Local time of a whole second, per zone: lines of one moment share it, and
# formatting a datetime costs more than the rest of the line.
_STAMPS: dict[tuple[int, tzinfo | None], str] = {}
_STAMPS_MAX = 4096


def _stamp(began: float, tz: tzinfo | None) -> str:
    second = math.floor(began)
    key = (second, tz)
    stamp = _STAMPS.get(key)
    if stamp is None:
        if tz is None:
            stamp = datetime.fromtimestamp(began).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        else:
            stamp = datetime.fromtimestamp(began, tz).strftime("%Y-%m-%d %H:%M:%S")
        # datetime rounds to the microsecond: a time this close to the next
        # second may print as that one, so it does not stand for its second.
        if began - second < 0.999999:
            if len(_STAMPS) >= _STAMPS_MAX:
                _STAMPS.clear()
            _STAMPS[key] = stamp
    return stamp


def lines_of(
    transitions: list[Transition], tz: tzinfo | None, skipped: Callable[[Transition, Exception], None]
) -> list[str]:
    """The transitions' report lines; one whose time is out of range is left
    out and handed to ``skipped`` (to log it as its caller logs)."""
    out = []
    for t in transitions:
        try:
            out.append(t.line(tz))
        except (ValueError, OverflowError, OSError) as e:  # a time out of range
            skipped(t, e)
    return out


def _log_skipped(t: Transition, e: Exception) -> None:
    log.error("report line of {kind} skipped: {err}", kind=t.kind, err=str(e))


def clean_field(value: str) -> str:
    """A ``;``-separated field without separators or line breaks (also the audit file's)."""
    return value.replace(";", ",").replace("\n", " ").replace("\r", " ")


_clean = clean_field


# What a report line looks like (DESIGN.md): anything else in the outbox is
# refused before it reaches the file.
REPORT_LINE = re.compile(
    r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2};(?:CALL|AGENT);[^;\r\n]*;[^;\r\n]+;\d+;[^;\r\n]*;[^;\r\n]*"
    r"(?:;[^;\r\n]*)?\n"  # the eighth column (pause reason); lines kept from before it have seven
)
# A torn tail longer than this is not looked at as a line: moved aside whole.
TORN_SUFFIX = ".torn"


def is_report_line(text: str) -> bool:
    return REPORT_LINE.fullmatch(text) is not None


class ReportWriterError(Exception):
    pass


class ReportWriter:
    """Appends report lines; survives rotation, full disks and torn lines."""

    label = "report file"

    def __init__(self, path: str, tz: tzinfo | None = None, fsync: bool = True) -> None:
        self.path = path
        self.tz = tz
        self.fsync = fsync  # fsync after each batch (measured: ~0.7 ms on ext4/virtio)
        self._fd: int | None = None
        self._ino: tuple[int, int] | None = None
        self._failing = False
        self.lines_written = 0
        self.failed_writes = 0  # for tests, health and the benchmark
        self._syncing = False  # an fsync runs in the sync thread
        self._next_sync: list[defer.Deferred[bool]] = []  # waiting for the next one
        self._next_fds: dict[tuple[int, int], int] = {}  # file -> descriptor the next one syncs

    @property
    def failing(self) -> bool:
        """True from a failed write until the next one that works (one log line each)."""
        return self._failing

    def open(self) -> None:
        """Open for append; raises ReportWriterError with one clear line if impossible."""
        try:
            self._open()
        except OSError as e:
            raise ReportWriterError(
                f"{self.label} {self.path}: cannot open for writing ({e.strerror})"
            ) from None

    def _open(self) -> None:
        self.close()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o640)
        except FileNotFoundError:
            # A missing directory is created (a fresh /var/lib/callcenter, ./var).
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            fd = os.open(self.path, flags, 0o640)
        st = os.fstat(fd)
        self._fd, self._ino = fd, (st.st_dev, st.st_ino)
        self._move_torn_tail(fd, st.st_size)

    def _move_torn_tail(self, fd: int, size: int) -> None:
        """A last line without its newline (a kill mid-write): move it aside."""
        if size <= 0:
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(max(0, size - 65536))
                tail = f.read()
        except OSError:
            return
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        keep = size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail))
        fragment = tail[cut + 1 :] if cut >= 0 else tail
        try:
            with open(self.path + TORN_SUFFIX, "ab") as aside:
                aside.write(fragment + b"\n")
            os.ftruncate(fd, keep)
        except OSError as e:
            log.error(
                "report file {path}: its last line is torn and could not be moved aside ({err})",
                path=self.path,
                err=e.strerror,
            )
            return
        log.warn(
            "report file {path}: torn last line ({n} bytes, no newline) moved to {aside}",
            path=self.path,
            n=len(fragment),
            aside=self.path + TORN_SUFFIX,
        )

    def reopen(self) -> None:
        """After logrotate moved the file (SIGHUP): start a new one at the path."""
        try:
            self._open()
            self._failing = False
            log.info("report file {path} reopened", path=self.path)
        except OSError as e:
            self._fail(e, 0)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def _moved(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._ino

    def write(self, transitions: list[Transition]) -> bool:
        """Append these transitions' lines; True if all of them are in the file."""
        lines = [t.line(self.tz) for t in transitions]
        return self.write_lines(lines) == len(lines)

    def write_lines(self, lines: list[str], fsync: bool | None = None) -> int:
        """Append whole lines in order; returns how many are in the file (a prefix).

        The rest are not in the file at all (a partial line is cut back), so
        the caller can hold them and call again later.  ``fsync=False``: the
        caller syncs later (``sync_off_thread``); None: this writer's own setting.
        """
        if not lines:
            return 0
        data = [line.encode("utf-8", "surrogateescape") for line in lines]
        done = 0
        try:
            if self._fd is None or self._moved():
                self._open()
            assert self._fd is not None
            fd = self._fd
            blob = b"".join(data)
            written = 0
            try:
                while written < len(blob):
                    n = os.write(fd, memoryview(blob)[written:])
                    if n <= 0:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    written += n
                if self.fsync if fsync is None else fsync:
                    _fsync(fd)
            except OSError:
                whole = _whole_lines(data, written)
                self._cut_back(fd, written - sum(len(d) for d in data[:whole]))
                done = whole
                raise
            done = len(lines)
        except OSError as e:
            self._fail(e, len(lines) - done)
            self.lines_written += done
            return done
        if self._failing:
            log.info("report file {path} writable again", path=self.path)
            self._failing = False
        self.lines_written += done
        return done

    def sync_off_thread(self, reactor: Any) -> defer.Deferred[bool]:
        """``fsync`` what was written so far without blocking the reactor: in
        a thread (the reactor's pool), on a duplicate of the descriptor taken
        now (a rotation may close ours meanwhile).  Group commit: while one
        sync runs, further requests share the next one.  Fires True once the
        lines written before the call are on disk, False if the sync failed
        (logged; they are in the file, maybe not on disk).  Without threads (a
        test's ``Clock``), or with ``fsync`` off, it completes at once."""
        if not self.fsync or self._fd is None or self._ino is None:
            return defer.succeed(self._fd is not None or not self.fsync)
        if not IReactorThreads.providedBy(reactor):
            return defer.succeed(self._synced(self._sync_now([os.dup(self._fd)])))
        if self._ino not in self._next_fds:  # one per file: a rotation may make two
            self._next_fds[self._ino] = os.dup(self._fd)
        d: defer.Deferred[bool] = defer.Deferred()
        self._next_sync.append(d)
        if not self._syncing:
            self._start_sync(reactor)
        return d

    def _start_sync(self, reactor: Any) -> None:
        waiting, self._next_sync = self._next_sync, []
        fds, self._next_fds = list(self._next_fds.values()), {}
        self._syncing = True
        job = threads.deferToThreadPool(reactor, reactor.getThreadPool(), self._sync_now, fds)

        def done(result: Any) -> None:
            self._syncing = False
            ok = self._synced(result if isinstance(result, str) else "not run")
            for d in waiting:
                d.callback(ok)
            if self._next_sync:
                self._start_sync(reactor)

        job.addBoth(done)

    @staticmethod
    def _sync_now(fds: list[int]) -> str:
        """In the sync thread: only the system calls (no state, no logging);
        "" when done, else the first error."""
        error = ""
        for fd in fds:
            try:
                _fsync(fd)
            except OSError as e:
                error = error or e.strerror or str(e)
            finally:
                os.close(fd)
        return error

    def _synced(self, error: str) -> bool:
        if error:
            log.error("{label} {path}: fsync failed ({err})", label=self.label, path=self.path, err=error)
        return not error

    def _cut_back(self, fd: int, extra: int) -> None:
        """Remove the ``extra`` bytes of a line written in part (never glue the next one)."""
        if extra <= 0:
            return
        try:
            size = os.fstat(fd).st_size
            os.ftruncate(fd, max(0, size - extra))
        except OSError:
            # Left for the next open to move aside (the descriptor is closed below).
            pass

    def _fail(self, e: OSError, held: int) -> None:
        # One line when it starts failing, not one per status change.
        self.failed_writes += 1
        if not self._failing:
            log.error(
                "{label} {path}: cannot write ({err}); {held} line(s) held until it is "
                "writable again",
                label=self.label,
                path=self.path,
                err=e.strerror or str(e),
                held=held,
            )
        self._failing = True
        self.close()


class TurnWriter:
    """Report lines written once per reactor turn, for a center with no Redis
    store: every line that became due in the turn goes out in one write (and
    one ``fsync``), as the store's outbox writes them (``RedisStore._run_io``),
    instead of a write and an ``fsync`` per event; the ``fsync`` runs off the
    reactor (``ReportWriter.sync_off_thread``).  Lines the disk refuses are
    held, in order, and retried every ``retry`` seconds."""

    def __init__(self, reactor: Any, writer: ReportWriter, retry: float = 1.0) -> None:
        self.reactor = reactor
        self.writer = writer
        self.retry = retry
        self._held: list[str] = []
        self._call: Any = None

    @property
    def held_lines(self) -> int:
        return len(self._held)

    def add(self, transitions: list[Transition]) -> None:
        """Queue these transitions' lines (a subscriber of ``Callcenter``)."""
        if not transitions:
            return
        self._held += lines_of(transitions, self.writer.tz, _log_skipped)
        if self._call is None and self._held:
            self._call = self.reactor.callLater(0, self.flush)

    def flush(self, final: bool = False) -> None:
        """Write what is held now; ``final`` (at stop): its fsync inline too."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if not self._held:
            return
        # The write on the reactor (page cache: a kill loses nothing written),
        # the fsync in a thread, shared with the next turns' while it runs.
        done = self.writer.write_lines(self._held, fsync=None if final else False)
        del self._held[:done]
        if done and not final:
            self.writer.sync_off_thread(self.reactor)
        if self._held:
            self._call = self.reactor.callLater(self.retry, self.flush)


def _whole_lines(data: list[bytes], written: int) -> int:
    n = 0
    for d in data:
        if written < len(d):
            break
        written -= len(d)
        n += 1
    return n


def _fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.EROFS):  # a pipe or a device: nothing to sync
            return
        raise


class AppendFile(ReportWriter):
    """Another line file kept like the report (append, fsync, rotation, torn
    tails): the audit file (``callcenter.auth.audit``)."""

    def __init__(self, path: str, label: str, fsync: bool = True) -> None:
        super().__init__(path, None, fsync)
        self.label = label

    def write_text(self, text: str, lines: int) -> None:
        """Append whole lines; what a failing disk refuses is logged, not kept."""
        self.write_lines(text.splitlines(keepends=True))
