"""The audit trail: one line per dashboard command, who asked what and what Asterisk said.

``--audit PATH`` gets one ``;``-separated line per command::

    2026-12-01 10:20:42;alice;192.0.2.7;PAUSE;1001;Lunch;Success

time (local, the service's ``--timezone``), user, client address, action,
agent id, reason, and the answer: ``Success``, Asterisk's error message, or
``denied: not allowed`` for a command the user's role may not send (Asterisk
is not asked).  The file is appended and flushed per line and reopened after
rotation exactly like the report (``callcenter.report.AppendFile``); every
line also goes to the service log.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from twisted.logger import Logger

from callcenter.report import AppendFile, clean_field

log = Logger(namespace="callcenter.audit")


class AuditLog:
    def __init__(self, path: str | None, clock: Any, tz: tzinfo | None = None) -> None:
        self.clock = clock
        self.tz = tz
        self.file = AppendFile(path, "audit file") if path else None

    def open(self) -> None:
        if self.file is not None:
            self.file.open()

    def reopen(self) -> None:
        if self.file is not None:
            self.file.reopen()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    def record(self, *, user: str, address: str, action: str, agent: str, reason: str,
               answer: str) -> None:
        now = self.clock.seconds()
        stamp = (datetime.fromtimestamp(now, self.tz) if self.tz is not None
                 else datetime.fromtimestamp(now).astimezone())
        fields = (stamp.strftime("%Y-%m-%d %H:%M:%S"), user, address, action, agent, reason, answer)
        line = ";".join(clean_field(f) for f in fields)
        log.info("audit: {line}", line=line)
        if self.file is not None:
            self.file.write_text(line + "\n", 1)
