"""Rate-limited warnings: at most a few lines per kind of trouble, then a count.

For input an attacker or a broken peer can repeat at line rate (refused
WebSocket handshakes, AMI junk, Redis refusals, over-limit connections): one
``LogThrottle`` logs the first ``burst`` warnings of a kind (a *key*, a
constant string such as ``"web.origin"``, never text from the peer) in each
``interval`` and counts the rest; at the end of the interval one line says
``N more like this in the last 60 s: <the last one>``.  So a flood costs at
most ``burst + 1`` lines per kind per interval, and nothing is hidden: the
count and a sample are always logged.

With a reactor (anything with ``seconds`` and ``callLater``) the summary line
is logged on time even if the flood stops; with no clock (plain
``time.monotonic``) the count is added to the next line of that kind instead.
This module never raises into its caller.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.logger import Logger, LogLevel

# Seconds a kind of warning is counted before its "N more like this" line.
LOG_INTERVAL = 60.0
# Lines of one kind logged in full per interval before counting starts.
LOG_BURST = 1


class _Kind:
    __slots__ = ("started", "logged", "suppressed", "last", "timer")

    def __init__(self, started: float) -> None:
        self.started = started
        self.logged = 0
        self.suppressed = 0
        self.last: tuple[LogLevel, str, dict[str, object]] | None = None
        self.timer: Any = None


class LogThrottle:
    """At most ``burst`` lines per key every ``interval`` seconds, then one count."""

    def __init__(
        self,
        logger: Logger,
        clock: Any = None,
        interval: float = LOG_INTERVAL,
        burst: int = LOG_BURST,
    ) -> None:
        self._log = logger
        self._clock = clock if clock is not None and hasattr(clock, "callLater") else None
        self._now = clock.seconds if clock is not None else time.monotonic
        self.interval = interval
        self.burst = max(1, burst)
        self._kinds: dict[str, _Kind] = {}
        self.suppressed_total = 0  # for tests and diagnostics

    def allow(self, key: str) -> int | None:
        """None to stay quiet, else how many were suppressed and not yet reported."""
        now = self._now()
        kind = self._kinds.get(key)
        if kind is not None and now - kind.started >= self.interval:
            self._summarise(key)  # no timer (plain clock): report the count now
            kind = None
        if kind is None:
            kind = self._kinds[key] = _Kind(now)
        if kind.logged < self.burst:
            kind.logged += 1
            return 0
        kind.suppressed += 1
        self.suppressed_total += 1
        if self._clock is not None and kind.timer is None:
            delay = max(0.0, kind.started + self.interval - now)
            kind.timer = self._clock.callLater(delay, self._summarise, key)
        return None

    def warn(self, key: str, fmt: str, /, **fields: object) -> bool:
        return self.emit(LogLevel.warn, key, fmt, **fields)

    def error(self, key: str, fmt: str, /, **fields: object) -> bool:
        return self.emit(LogLevel.error, key, fmt, **fields)

    def emit(self, level: LogLevel, key: str, fmt: str, /, **fields: object) -> bool:
        """Log ``fmt`` at ``level`` unless this key is over its budget (then count it)."""
        if self.allow(key) is None:
            self._kinds[key].last = (level, fmt, fields)
            return False
        self._log.emit(level, fmt, **fields)
        return True

    def failure(self, key: str, fmt: str, /, **fields: object) -> bool:
        """Like ``error`` with the current exception's traceback; call in ``except``."""
        if self.allow(key) is None:
            self._kinds[key].last = (LogLevel.error, fmt, fields)
            return False
        self._log.failure(fmt, level=LogLevel.error, **fields)
        return True

    def _summarise(self, key: str) -> None:
        kind = self._kinds.pop(key, None)
        if kind is None:
            return
        if kind.timer is not None and kind.timer.active():
            kind.timer.cancel()
        if not kind.suppressed or kind.last is None:
            return
        level, fmt, fields = kind.last
        try:
            self._log.emit(
                level,
                "{throttle_count} more like this in the last {throttle_interval:g} s: " + fmt,
                throttle_count=kind.suppressed,
                throttle_interval=self.interval,
                **fields,
            )
        except Exception:  # a summary must never break the caller's timer
            pass

    def flush(self) -> None:
        """Log every pending count now (at shutdown, or in tests)."""
        for key in list(self._kinds):
            self._summarise(key)


__all__ = ["LOG_BURST", "LOG_INTERVAL", "LogThrottle"]
