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


def got_counts(stats: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    out = {"": _triple(stats)}
    for queue, q in stats["queues"].items():
        if q["calls_received"]:
            out[queue] = _triple(q)
    return out


def _triple(s: dict[str, Any]) -> tuple[int, int, int]:
    return (s["calls_received"], s["calls_answered"], s["calls_abandoned"] + s["calls_timeout"])


__all__ = ["GAPS", "caller_traces", "cut_times", "expected_counts", "fresh_pbx", "got_counts",
           "trace_events"]
