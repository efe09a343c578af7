"""Shared by the counters-mode gap tests: the traces with callers, the cut
points, the PBX's truth after a gap (tests/support/pbxstate.py) and the counts
expected.json says the day must end with."""

from __future__ import annotations

from typing import Any

from callcenter.ami.message import Message
from tests.core import traces
from tests.support.pbxstate import PbxState, _Params

from .support import trace_events

GAPS = (2.0, 5.0, 30.0)
CUTS = 4  # cut points per trace, spread over the span that has callers


def caller_traces() -> list[str]:
    return [
        n for n in traces.EVENT_TRACES
        if any(c.get("joined") for c in traces.load(n).expected.get("callers", []))
    ]


def queues_of(expected: dict[str, Any]) -> list[str]:
    """Every queue the PBX has configured (its QueueStatus lists them all)."""
    names = set(expected.get("asterisk_queueparams_final_by_queue", {}))
    names |= set(expected.get("asterisk_queuestatus_final_other_queues", {}))
    if "queue" in expected:
        names.add(expected["queue"])
    return sorted(names)


def fresh_pbx(expected: dict[str, Any]) -> PbxState:
    return PbxState(params={q: _Params() for q in queues_of(expected)})


def cut_times(events: list[tuple[float, Message]]) -> list[float]:
    """Times inside the span where callers are in queues (first join .. last end)."""
    joins = [t for t, m in events if m.event == "QueueCallerJoin"]
    ends = [t for t, m in events if m.event in ("AgentComplete", "QueueCallerAbandon")]
    first, last = min(joins), max(ends or joins)
    return [first + (last - first) * k / CUTS for k in range(CUTS)]


def expected_counts(expected: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    """Per queue and "" (total): (received, answered, ended unanswered).

    "Ended unanswered" is abandoned + timeout: without a queue log the two are
    one counter at the PBX (app_queue's Abandoned counts a timeout too), so a
    caller gone unseen is not known to have hung up rather than timed out.
    """
    counts = expected["driver_counts"]
    by_queue = expected.get("driver_counts_by_queue") or {expected["queue"]: counts}
    out = {}
    for queue, c in [*by_queue.items(), ("", counts)]:
        received = c.get("queue_entries", c.get("offered", 0))
        out[queue] = (received, c["answered"], c["abandoned"] + c.get("timeout", 0))
    return out


def expected_split(name: str, cut: float, gap: float) -> dict[str, tuple[int, int]]:
    """Per queue and "" (total): (abandoned, timeout) by docs/reliability.md's rule
    for a gap without a queue log, from expected.json's queue entries (Asterisk's
    queue_log outcomes), the trace's own joins and the PBX's channels after the gap.

    An entry whose end was heard (before the cut, after the gap) keeps its outcome.
    A timeout that ended in the gap is a timeout when the caller was known waiting
    at the cut and its channel is alive after the gap (in its next queue, with an
    agent, or in the dialplan); otherwise (hung up since, or never seen) it can not
    be told from an abandon: it is counted abandoned.
    """
    expected = traces.load(name).expected
    events = trace_events(name)
    truth = fresh_pbx(expected).feed([(t, m) for t, m in events if t <= cut + gap])
    known = {(m["Uniqueid"], m["Queue"]) for t, m in events if m.event == "QueueCallerJoin" and t <= cut}
    out: dict[str, list[int]] = {}
    for row in expected.get("callers", []):
        outcome = row.get("outcome")
        if not row.get("joined") or outcome not in ("abandoned", "timeout"):
            continue
        queue = row.get("queue") or expected["queue"]
        as_timeout = False
        if outcome == "timeout":
            t_end = row["t_end"]  # only the queue-entries format has timeouts
            heard = t_end <= cut or t_end > cut + gap
            as_timeout = heard or (
                (row["uniqueid"], queue) in known and row["uniqueid"] in truth.channels
            )
        for key in (queue, ""):
            out.setdefault(key, [0, 0])[1 if as_timeout else 0] += 1
    return {q: (a, t) for q, (a, t) in out.items()}


def got_split(stats: dict[str, Any]) -> dict[str, tuple[int, int]]:
    out = {}
    for queue, s in [*stats["queues"].items(), ("", stats)]:
        if s["calls_abandoned"] or s["calls_timeout"]:
            out[queue] = (s["calls_abandoned"], s["calls_timeout"])
    return out


def got_counts(stats: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    out = {"": _triple(stats)}
    for queue, q in stats["queues"].items():
        if q["calls_received"]:
            out[queue] = _triple(q)
    return out


def _triple(s: dict[str, Any]) -> tuple[int, int, int]:
    return (s["calls_received"], s["calls_answered"], s["calls_abandoned"] + s["calls_timeout"])


__all__ = ["GAPS", "caller_traces", "cut_times", "expected_counts", "expected_split", "fresh_pbx",
           "got_counts", "got_split", "trace_events"]
