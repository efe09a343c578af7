"""The report file: one ``;``-separated line per status change, appended and flushed.

Columns (DESIGN.md): local time the status began, CALL/AGENT, caller id number
or agent id, the status that just ended, whole seconds spent in it, queue,
the call's Asterisk unique id (empty for agents).  The file is opened for
append, never truncated; it is reopened on SIGHUP (logrotate) and when it has
been moved or deleted under us.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TextIO

from twisted.logger import Logger

log = Logger()


@dataclass(frozen=True)
class Transition:
    """A status that ended: what the report file records."""

    kind: str  # CALL or AGENT
    ident: str  # caller id number, or agent id
    status: str  # the status that ended
    began: float  # Unix time it began
    duration: int  # whole seconds spent in it
    queue: str
    uniqueid: str = ""  # the call's Asterisk Uniqueid; empty for agents

    def line(self, tz: tzinfo | None = None) -> str:
        if tz is None:
            stamp = datetime.fromtimestamp(self.began).astimezone()
        else:
            stamp = datetime.fromtimestamp(self.began, tz)
        fields = (
            stamp.strftime("%Y-%m-%d %H:%M:%S"),
            self.kind,
            self.ident,
            self.status,
            str(self.duration),
            self.queue,
            self.uniqueid,
        )
        # The report is ';'-separated with no quoting: keep separators and
        # line breaks that came from the PBX out of it.
        return ";".join(clean_field(f) for f in fields) + "\n"


def clean_field(value: str) -> str:
    """A ``;``-separated field without separators or line breaks (also the audit file's)."""
    return value.replace(";", ",").replace("\n", " ").replace("\r", " ")


class ReportWriterError(Exception):
    pass


class AppendFile:
    """A line file appended and flushed as lines come; survives rotation and bad disks.

    The report and the audit file (``callcenter.auth.audit``) are both one.
    """

    def __init__(self, path: str, label: str = "report file") -> None:
        self.path = path
        self.label = label
        self._file: TextIO | None = None
        self._ino: tuple[int, int] | None = None
        self._failing = False
        self.lines_written = 0

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
        try:
            f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open on purpose
        except FileNotFoundError:
            # A missing directory is created (a fresh /var/lib/callcenter, ./var).
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        st = os.fstat(f.fileno())
        self._file, self._ino = f, (st.st_dev, st.st_ino)

    def reopen(self) -> None:
        """After logrotate moved the file (SIGHUP): start a new one at the path."""
        try:
            self._open()
            self._failing = False
            log.info("{label} {path} reopened", label=self.label, path=self.path)
        except OSError as e:
            self._fail(e)

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def _moved(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._ino

    def write_text(self, text: str, lines: int) -> None:
        """Append ``lines`` whole lines; on failure they are lost (one log line)."""
        try:
            if self._file is None or self._moved():
                self._open()
            assert self._file is not None
            self._file.write(text)
            self._file.flush()
        except OSError as e:
            self._fail(e)
            return
        if self._failing:
            log.info("{label} {path} writable again", label=self.label, path=self.path)
            self._failing = False
        self.lines_written += lines

    def _fail(self, e: OSError) -> None:
        # One line when it starts failing, not one per status change.
        if not self._failing:
            log.error(
                "{label} {path}: cannot write ({err}); lines are lost until it is writable",
                label=self.label,
                path=self.path,
                err=e.strerror or str(e),
            )
        self._failing = True
        self.close()


class ReportWriter(AppendFile):
    """Appends transitions to the report file."""

    def __init__(self, path: str, tz: tzinfo | None = None) -> None:
        super().__init__(path, "report file")
        self.tz = tz

    def write(self, transitions: list[Transition]) -> None:
        if transitions:
            self.write_text("".join(t.line(self.tz) for t in transitions), len(transitions))
