"""KPI counters and the business day they belong to.

Counters are plain sums so they can be persisted, merged and never double
counted; the STATS averages and percentages are derived from them on demand.
Hold and talk seconds are Asterisk's own integer ``HoldTime``/``TalkTime``
where the events carry them, so the figures do not depend on when the service
read an event.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta, tzinfo
from typing import Any


@dataclass
class Counters:
    received: int = 0
    answered: int = 0
    abandoned: int = 0
    completed: int = 0  # answered calls that ended
    hold_answered: int = 0  # seconds, summed over answered calls
    hold_abandoned: int = 0  # seconds, summed over abandoned calls
    talk_completed: int = 0  # seconds, summed over completed calls
    answered_in_sla: int = 0
    abandoned_in_sla: int = 0
    # Left the queue unanswered without hanging up there (queue timeout, then
    # voicemail, another queue...): app_queue's EXITWITHTIMEOUT.
    timeout: int = 0

    def to_record(self) -> dict[str, int]:
        return dict(self.__dict__)

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> Counters:
        known = {f.name for f in fields(cls)}
        values = {k: int(v) for k, v in d.items() if k in known}
        if any(v < 0 for v in values.values()):
            raise ValueError("negative KPI counter")
        return cls(**values)

    def add(self, other: Counters) -> None:
        mine, theirs = self.__dict__, other.__dict__
        for name in mine:
            mine[name] += theirs[name]


def _mean(total: int, n: int) -> int:
    # Whole seconds, rounded half up as a person would.
    return int(total / n + 0.5) if n else 0


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def kpi_view(c: Counters) -> dict[str, Any]:
    """The counter-derived STATS keys of DESIGN.md."""
    return {
        "calls_received": c.received,
        "calls_answered": c.answered,
        "calls_abandoned": c.abandoned,
        "calls_timeout": c.timeout,
        "average_handle_time": _mean(c.talk_completed, c.completed),
        "average_queue_time": _mean(c.hold_answered, c.answered),
        "average_abandoned_time": _mean(c.hold_abandoned, c.abandoned),
        "sla": _pct(c.answered_in_sla, c.answered),
        "abandon_rate": _pct(c.abandoned, c.received),
        "sla_with_abandoned": _pct(
            c.answered_in_sla + c.abandoned_in_sla, c.answered + c.abandoned
        ),
    }


class DayBook:
    """The KPI counters of one business day, per queue."""

    def __init__(self, day: str, queues: dict[str, Counters] | None = None) -> None:
        self.day = day
        self.queues: dict[str, Counters] = queues if queues is not None else {}

    def queue(self, name: str) -> Counters:
        c = self.queues.get(name)
        if c is None:
            c = self.queues[name] = Counters()
        return c

    def total(self) -> Counters:
        t = Counters()
        for c in self.queues.values():
            t.add(c)
        return t

    def to_record(self) -> dict[str, Any]:
        return {"day": self.day, "queues": {q: c.to_record() for q, c in self.queues.items()}}

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> DayBook:
        return cls(str(d["day"]), {str(q): Counters.from_record(c) for q, c in d["queues"].items()})

    def summary(self) -> dict[str, Any]:
        """The finished day's KPIs, totals and per queue, as kept under its dated key."""
        out = {"day": self.day, **kpi_view(self.total())}
        out["queues"] = {q: kpi_view(c) for q, c in sorted(self.queues.items())}
        return out


class BusinessDay:
    """Maps an instant to the business day it belongs to.

    The day starts at ``starts_at`` (hour, minute) local time in ``tz`` (the
    system's zone when None); a call center running 24/7 may pick a shift
    change such as 06:00, so 05:59 still belongs to yesterday.
    """

    def __init__(self, starts_at: tuple[int, int] = (0, 0), tz: tzinfo | None = None) -> None:
        self.offset = timedelta(hours=starts_at[0], minutes=starts_at[1])
        self.tz = tz

    def _local(self, ts: float) -> datetime:
        if self.tz is None:
            return datetime.fromtimestamp(ts).astimezone()
        return datetime.fromtimestamp(ts, self.tz)

    def day_of(self, ts: float) -> str:
        return (self._local(ts) - self.offset).date().isoformat()

    def start_of(self, ts: float) -> float:
        """The Unix time the business day holding ``ts`` began."""
        start = self.next_start(ts - 86400)
        return start if start <= ts else self.next_start(ts - 2 * 86400)

    def next_start(self, ts: float) -> float:
        """The Unix time the business day after the one holding ``ts`` begins."""
        day = date.fromisoformat(self.day_of(ts)) + timedelta(days=1)
        tz = self.tz if self.tz is not None else self._local(ts).tzinfo
        naive = datetime(day.year, day.month, day.day) + self.offset
        start = naive.replace(tzinfo=tz)
        if self.tz is None:
            # Re-resolve with the system zone so DST changes are honoured.
            start = datetime.fromtimestamp(naive.timestamp()).astimezone()
        return start.timestamp()
