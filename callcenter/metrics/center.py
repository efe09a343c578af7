"""Queue, agent and KPI metrics read from the Callcenter, which owns them.

Gauges (waiting calls, longest wait, agents by status, the day's SLA and
abandon rate) are read at scrape time: they cost nothing per event.

Counters come from the Tally's per-day counters: each scrape adds what every
(day, queue) counter grew by since it was last seen, so ``*_total`` is
monotonic across business days and counts only what this process counted
(``start`` takes the restored counts as the base).  The hold/talk histograms
need one value per call: a subscriber to ``Changes`` syncs, for the queues of
the event's CALL/CONNECT objects only and only when the event changed a day's
counters, the same difference, and the growth of ``hold_answered`` by one
answered call is that call's hold time.  An event that ended several calls of
one queue at once (a reconcile) observes their mean, once per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from callcenter.core.counting import whole
from callcenter.kpi import Counters
from callcenter.metrics.histogram import Buckets
from callcenter.model import AGENT_STATUSES, LOGGEDOUT

if TYPE_CHECKING:
    from callcenter.center import Callcenter
    from callcenter.core.changes import Changes

#: Upper bounds (seconds) of the hold- and talk-time histograms' buckets.
HOLD_BUCKETS = (5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
TALK_BUCKETS = (15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)

# The Counters fields a counter is made of, in the order of the tuples below.
_FIELDS = (
    "received", "answered", "abandoned", "timeout", "completed",
    "answered_in_sla", "hold_answered", "hold_abandoned", "talk_completed",
)
_N = len(_FIELDS)
_ZERO = (0,) * _N
_ANSWERED, _ABANDONED, _COMPLETED = 1, 2, 4
_HOLD_ANSWERED, _HOLD_ABANDONED, _TALK = 6, 7, 8
_STATUSES = tuple(s for s in AGENT_STATUSES if s != LOGGEDOUT)


def _values(c: Counters) -> tuple[int, ...]:
    d = c.__dict__
    return tuple(d[f] for f in _FIELDS)


class CenterCollector(Collector):
    """The Callcenter's queues, agents and KPIs as Prometheus metrics."""

    def __init__(self, center: Callcenter, *, sla_target: float = 80.0, agent_series: bool = False) -> None:
        self.center = center
        self.sla_target = sla_target
        self.agent_series = agent_series  # per-agent series: one per agent id, off by default
        self._seen: dict[tuple[str, str], tuple[int, ...]] = {}
        self._totals: dict[str, list[int]] = {}
        self._hold: dict[tuple[str, str], Buckets] = {}
        self._talk: dict[str, Buckets] = {}
        self._unsubscribe: Any = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Take the counts the center has now (restored from Redis) as the base,
        and follow its changes."""
        for day, book in self._books():
            for q, c in book.queues.items():
                self._seen[(day, q)] = _values(c)
                self._totals.setdefault(q, [0] * _N)  # known queues show 0, not nothing
        if self._unsubscribe is None:
            self._unsubscribe = self.center.subscribe(self._on_changes)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ------------------------------------------------------------ counting

    def _books(self) -> Iterator[tuple[str, Any]]:
        tally = self.center.tally
        yield tally.book.day, tally.book
        yield from tally.past.items()

    def _on_changes(self, ch: Changes) -> None:
        # Most events change no day counters: one attribute test and out.
        if not ch.days:
            return
        queues = {o.get("queue") for o in ch.objects if o.get("type") in ("CALL", "CONNECT")}
        queues.discard(None)
        queues.discard("")
        if not queues:
            return
        tally = self.center.tally
        for day in ch.days:
            book = tally.book if day == tally.book.day else tally.past.get(day)
            if book is None:
                continue
            for q in queues:
                c = book.queues.get(q)
                if c is not None:
                    self._sync(day, q, c)

    def _sync(self, day: str, queue: str, c: Counters) -> None:
        now = _values(c)
        key = (day, queue)
        before = self._seen.get(key, _ZERO)
        if now == before:
            return
        self._seen[key] = now
        delta = [max(0, a - b) for a, b in zip(now, before, strict=True)]  # a merge may lower one
        totals = self._totals.get(queue)
        if totals is None:
            totals = self._totals[queue] = [0] * _N
        for i in range(_N):
            totals[i] += delta[i]
        if delta[_ANSWERED]:
            self._hold_of(queue, "answered").observe(
                delta[_HOLD_ANSWERED] / delta[_ANSWERED], delta[_ANSWERED])
        if delta[_ABANDONED]:
            self._hold_of(queue, "abandoned").observe(
                delta[_HOLD_ABANDONED] / delta[_ABANDONED], delta[_ABANDONED])
        if delta[_COMPLETED]:
            talk = self._talk.get(queue)
            if talk is None:
                talk = self._talk[queue] = Buckets(TALK_BUCKETS)
            talk.observe(delta[_TALK] / delta[_COMPLETED], delta[_COMPLETED])

    def _hold_of(self, queue: str, outcome: str) -> Buckets:
        h = self._hold.get((queue, outcome))
        if h is None:
            h = self._hold[(queue, outcome)] = Buckets(HOLD_BUCKETS)
        return h

    def catch_up(self) -> None:
        """Count what events did not show (a timeout counted in the queue a
        caller left), and forget days the Tally no longer keeps."""
        days = set()
        for day, book in self._books():
            days.add(day)
            for q, c in book.queues.items():
                self._sync(day, q, c)
        for key in [k for k in self._seen if k[0] not in days]:
            del self._seen[key]

    # ------------------------------------------------------------ exposition

    def describe(self) -> list:
        return []  # no fixed set: queues come and go (and collect reads live state)

    def collect(self) -> Iterator[Any]:
        self.catch_up()
        yield from self._counters()
        yield from self._histograms()
        yield from self._gauges()

    def _counters(self) -> Iterator[Any]:
        received = CounterMetricFamily(
            "callcenter_calls_received", "Queue entries (a caller entering a queue).", labels=["queue"])
        ended = CounterMetricFamily(
            "callcenter_calls", "Queue entries that ended their wait, by outcome "
            "(answered, abandoned by the caller, timeout: left unanswered without hanging up).",
            labels=["queue", "outcome"])
        completed = CounterMetricFamily(
            "callcenter_calls_completed", "Answered calls that ended.", labels=["queue"])
        in_sla = CounterMetricFamily(
            "callcenter_calls_answered_in_sla", "Calls answered within --sla seconds.", labels=["queue"])
        for q, t in sorted(self._totals.items()):
            received.add_metric([q], t[0])
            ended.add_metric([q, "answered"], t[_ANSWERED])
            ended.add_metric([q, "abandoned"], t[_ABANDONED])
            ended.add_metric([q, "timeout"], t[3])
            completed.add_metric([q], t[_COMPLETED])
            in_sla.add_metric([q], t[5])
        yield from (received, ended, completed, in_sla)

    def _histograms(self) -> Iterator[Any]:
        hold = HistogramMetricFamily(
            "callcenter_hold_seconds", "Time callers waited in the queue (Asterisk's HoldTime), "
            "by outcome.", labels=["queue", "outcome"])
        for (q, outcome), h in sorted(self._hold.items()):
            hold.add_metric([q, outcome], *h.samples())
        talk = HistogramMetricFamily(
            "callcenter_talk_seconds", "Talk time of completed calls (Asterisk's TalkTime).", labels=["queue"])
        for q, h in sorted(self._talk.items()):
            talk.add_metric([q], *h.samples())
        yield from (hold, talk)

    def _gauges(self) -> Iterator[Any]:
        center = self.center
        now = center.clock.seconds()
        roster, callbook, book = center.roster, center.callbook, center.book
        queues = sorted(set(book.queues) | set(roster.by_queue) | set(callbook.by_queue) | set(callbook.waiting))
        waiting_g = GaugeMetricFamily(
            "callcenter_queue_calls_waiting", "Callers waiting in the queue now.", labels=["queue"])
        longest_g = GaugeMetricFamily(
            "callcenter_queue_longest_wait_seconds", "How long the longest-waiting caller has "
            "waited (0 when nobody waits).", labels=["queue"])
        agents_g = GaugeMetricFamily(
            "callcenter_queue_agents", "Agents who are members of the queue, by status.",
            labels=["queue", "status"])
        sla_g = GaugeMetricFamily(
            "callcenter_queue_sla_ratio", "Today's answered calls answered within --sla seconds, "
            "0..1 (absent before the day's first answer).", labels=["queue"])
        abandon_g = GaugeMetricFamily(
            "callcenter_queue_abandon_ratio", "Today's abandoned / received calls, 0..1 (absent "
            "before the day's first call).", labels=["queue"])
        # Members by status as set intersections (in C): a walk of every
        # membership in Python cost ~100 ms for 2,000 agents in 50 queues each.
        by_status = self._ids_by_status()
        for q in queues:
            waiting = callbook.waiting.get(q) or {}
            waiting_g.add_metric([q], len(waiting))
            longest_g.add_metric([q], whole(now - min(waiting.values())) if waiting else 0)
            members = roster.by_queue.get(q) or set()
            for status, ids in by_status.items():
                agents_g.add_metric([q, status], len(members & ids))
            c = book.queues.get(q)
            if c is not None and c.answered:
                sla_g.add_metric([q], c.answered_in_sla / c.answered)
            if c is not None and c.received:
                abandon_g.add_metric([q], c.abandoned / c.received)
        yield from (waiting_g, longest_g, agents_g, sla_g, abandon_g)
        yield GaugeMetricFamily("callcenter_sla_seconds", "The --sla setting: seconds within which "
                                "a call counts as answered in service level.", value=center.sla)
        yield GaugeMetricFamily("callcenter_sla_target_ratio", "The --sla-target setting, 0..1.",
                                value=self.sla_target / 100.0)
        if self.agent_series:
            yield from self._agent_gauges(now)

    def _ids_by_status(self) -> dict[str, set[str]]:
        """Agent ids by status (logged-out ones in none), one pass over the agents."""
        by_status: dict[str, set[str]] = {status: set() for status in _STATUSES}
        for agentid, agent in self.center.agents.items():
            ids = by_status.get(agent.status)
            if ids is not None:
                ids.add(agentid)
        return by_status

    def _agent_gauges(self, now: float) -> Iterator[Any]:
        # Behind --metrics-agents: one series per agent id (never a caller).
        status_g = GaugeMetricFamily(
            "callcenter_agent_status", "1 for the agent's current status.", labels=["agent", "status"])
        since_g = GaugeMetricFamily(
            "callcenter_agent_status_seconds", "Seconds the agent has been in its current status.",
            labels=["agent"])
        for agentid, agent in sorted(self.center.agents.items()):
            status_g.add_metric([agentid, agent.status], 1)
            since_g.add_metric([agentid], whole(now - agent.since))
        yield from (status_g, since_g)
