"""Count: every KPI rule, in one place.

A queue entry is counted once when it enters (``received``), and once when it
ends its wait: answered (``count_answer``), abandoned by the caller
(``count_abandon``) or left unanswered without hanging up there
(``count_timeout``); an answered call is counted again when it ends
(``count_complete``).  ``uncount_entry``/``uncount_answer`` are the inverses, used by the store
when it reloads counts a late Redis already had.  The counters are per
business day and queue (``callcenter.kpi``); a call counts in the day it
entered the queue.

Rounding, one rule for every KPI and report duration: elapsed seconds are
rounded half up (``whole``), and so are the averages (``kpi._mean``).  Hold
and talk seconds come from Asterisk's own whole ``HoldTime``/``TalkTime`` when
the event carries them; only without them are they measured by ``whole``.
"""

from __future__ import annotations

from twisted.logger import Logger

from callcenter.core.changes import Tracker
from callcenter.kpi import BusinessDay, Counters, DayBook

log = Logger()

#: How many finished business days keep receiving late counts in memory.
PAST_DAYS = 2


def whole(seconds: float) -> int:
    """Elapsed seconds as a whole number: half up, never negative, immune to
    float noise (5.9999999 is 6, 2.5 is 3)."""
    return max(0, int(seconds + 0.5 + 1e-6))


def count_entry(c: Counters) -> None:
    c.received += 1


def uncount_entry(c: Counters) -> None:
    c.received = max(0, c.received - 1)


def count_answer(c: Counters, hold: int, sla: int) -> None:
    c.answered += 1
    c.hold_answered += hold
    if hold <= sla:
        c.answered_in_sla += 1


def uncount_answer(c: Counters, hold: int, sla: int) -> None:
    c.answered = max(0, c.answered - 1)
    c.hold_answered = max(0, c.hold_answered - hold)
    if hold <= sla:
        c.answered_in_sla = max(0, c.answered_in_sla - 1)


def count_abandon(c: Counters, hold: int, sla: int) -> None:
    c.abandoned += 1
    c.hold_abandoned += hold
    if hold <= sla:
        c.abandoned_in_sla += 1


def count_timeout(c: Counters) -> None:
    c.timeout += 1


def count_complete(c: Counters, talk: int) -> None:
    c.completed += 1
    c.talk_completed += talk


#: Distinct pause reasons an agent's day keeps apart (free-text pauses could
#: make any number); later ones are summed under OTHER_REASONS.
MAX_PAUSE_REASONS = 32
OTHER_REASONS = "(other reasons)"


def count_pause(pause_time: dict[str, int], reason: str, seconds: int) -> None:
    """An agent's pause with ``reason`` ("" when none was given) ended after
    ``seconds``: added to its day's pause time by reason (``Agent.pause_time``).
    Only time in PAUSED counts: a pause asked for during a call starts when the call ends."""
    if reason not in pause_time and len(pause_time) >= MAX_PAUSE_REASONS:
        reason = OTHER_REASONS
    pause_time[reason] = pause_time.get(reason, 0) + max(0, seconds)


class Tally:
    """Owns the KPI counters: today's book and the last few finished days."""

    def __init__(self, business_day: BusinessDay, now: float, tracker: Tracker, sla: int) -> None:
        self.business_day = business_day
        self.sla = sla
        self._tracker = tracker
        self.book = DayBook(business_day.day_of(now))
        self.past: dict[str, DayBook] = {}

    def counters(self, day: str, queue: str) -> Counters:
        """The counters a call's KPIs go to: the business day it entered the queue."""
        self._tracker.day(day or self.book.day)
        if day == self.book.day or not day:
            return self.book.queue(queue)
        book = self.past.get(day)
        if book is None:
            log.warn("no counters kept for day {day}; counting in {today}", day=day, today=self.book.day)
            self._tracker.day(self.book.day)
            return self.book.queue(queue)
        return book.queue(queue)

    def entry(self, day: str, queue: str) -> None:
        count_entry(self.counters(day, queue))

    def answer(self, day: str, queue: str, hold: int) -> None:
        count_answer(self.counters(day, queue), hold, self.sla)

    def abandon(self, day: str, queue: str, hold: int) -> None:
        count_abandon(self.counters(day, queue), hold, self.sla)

    def timeout(self, day: str, queue: str) -> None:
        count_timeout(self.counters(day, queue))

    def complete(self, day: str, queue: str, talk: int) -> None:
        count_complete(self.counters(day, queue), talk)

    def roll_to(self, day: str) -> DayBook:
        """Start counting ``day``; returns the finished book."""
        old = self.book
        self.past[old.day] = old
        for stale in sorted(self.past)[:-PAST_DAYS]:
            del self.past[stale]
        self.book = DayBook(day)
        ch = self._tracker.ch
        ch.rolled.append(old)
        ch.days.update((old.day, day))
        ch._stats_dirty = True
        log.info("business day {old} finished; counting {day}", old=old.day, day=day)
        return old

    def restore(self, books: list[DayBook] | tuple[DayBook, ...] | object) -> None:
        today = self.book.day
        for book in books:  # type: ignore[attr-defined]
            if book.day == today:
                self.book = book
            elif book.day < today:
                self.past[book.day] = book
        for stale in sorted(self.past)[:-PAST_DAYS]:
            del self.past[stale]
