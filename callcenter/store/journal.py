"""The local journal: Redis transactions not (yet) known to be in Redis, on disk.

When Redis does not answer within ``--report-wait`` seconds (hung, down,
refusing writes) the store no longer waits to write report lines: it first
appends the event's whole transaction here (``<report>.journal``, one JSON
line per transaction), then writes its lines to the report file.  A SIGKILL
at any moment then leaves, for every line in the file, either Redis with its
event or this journal with its transaction; the next start replays to Redis
the transactions Redis lacks (each carries its sequence number, and Redis
keeps the last one applied), so the restart's resync does not report those
status changes a second time.  Once Redis has applied everything journaled,
the file is truncated to zero.

Each record is ``{"e": epoch, "s": seq, "c": [[arg, ...], ...]}`` with every
command argument as a latin-1 string (bytes survive exactly; JSON escapes
the rest), so a record is one ASCII line and a record torn by a kill is
recognised (not JSON) and ignored: its lines were not written yet, since the
report line is written only after its journal record.

This module only reads and writes the file; the store decides what goes in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

from twisted.logger import Logger

log = Logger()

JOURNAL_SUFFIX = ".journal"
# Seconds a report line waits for Redis to acknowledge its event before it goes
# to the file through this journal instead (--report-wait).
REPORT_WAIT = 2.0

Command = list[bytes]


@dataclass(frozen=True)
class Record:
    epoch: str
    seq: int
    commands: list[Command]


def encode_record(epoch: str, seq: int, commands: Iterable[Command]) -> bytes:
    cmds = [[arg.decode("latin-1") for arg in cmd] for cmd in commands]
    return json.dumps({"e": epoch, "s": seq, "c": cmds}, separators=(",", ":")).encode("ascii") + b"\n"


def decode_record(line: bytes) -> Record | None:
    """A record, or None if the line is not a whole, well-formed one."""
    try:
        d = json.loads(line.decode("ascii"))
        epoch, seq, cmds = d["e"], d["s"], d["c"]
        if not isinstance(epoch, str) or isinstance(seq, bool) or not isinstance(seq, int):
            return None
        commands = [[arg.encode("latin-1") for arg in cmd] for cmd in cmds]
        if not commands or not all(cmd and all(isinstance(a, bytes) for a in cmd) for cmd in commands):
            return None
        return Record(epoch, seq, commands)
    except (UnicodeError, ValueError, KeyError, TypeError, AttributeError):
        return None


def read_journal(path: str) -> tuple[list[Record], int]:
    """The journal's records in order, and how many lines were not records."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return [], 0
    records: list[Record] = []
    bad = 0
    for line in raw.split(b"\n"):
        if not line:
            continue
        record = decode_record(line)
        if record is None:
            bad += 1
        else:
            records.append(record)
    return records, bad


class Journal:
    """Append-only file of records; ``append`` is all or nothing, like the report."""

    def __init__(self, path: str, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._fd: int | None = None
        # Bytes in the file (a previous process's records count until replayed).
        try:
            self.size = os.path.getsize(path)
        except OSError:
            self.size = 0
        self.failing = False

    def append(self, records: list[bytes]) -> bool:
        """Write these records at the end; False (nothing added) if the disk refused."""
        if not records:
            return True
        blob = b"".join(records)
        try:
            if self._fd is None:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
                self._fd = os.open(self.path, flags, 0o640)
                self.size = os.fstat(self._fd).st_size
            written = 0
            try:
                while written < len(blob):
                    n = os.write(self._fd, memoryview(blob)[written:])
                    if n <= 0:
                        raise OSError(28, os.strerror(28))
                    written += n
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                if written:
                    try:
                        os.ftruncate(self._fd, self.size)  # all or nothing
                    except OSError:
                        pass  # a torn record is ignored on reading
                raise
        except OSError as e:
            if not self.failing:
                log.error(
                    "report journal {path}: cannot write ({err}); report lines are held "
                    "in memory until it is writable",
                    path=self.path,
                    err=e.strerror or str(e),
                )
            self.failing = True
            self.close()
            return False
        self.size += len(blob)
        if self.failing:
            log.info("report journal {path} writable again", path=self.path)
            self.failing = False
        return True

    def clear(self) -> bool:
        """Everything in it is in Redis now: empty the file."""
        if self.size == 0:
            return True
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            os.ftruncate(self._fd, 0)
        except OSError:
            return False  # the next start skips them: Redis's marker is past them
        self.size = 0
        return True

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


__all__ = ["JOURNAL_SUFFIX", "REPORT_WAIT", "Journal", "Record", "decode_record", "encode_record", "read_journal"]
