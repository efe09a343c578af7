"""Every recorded trace, fed straight into the Callcenter: its conclusions equal
Asterisk's own (the loopback TCP replay is in test_replay_tcp.py)."""

from __future__ import annotations

import pytest

from callcenter.ami.message import Splitter, parse_message

from . import traces


@pytest.mark.parametrize("name", traces.EVENT_TRACES)
def test_trace_matches_asterisk(name: str) -> None:
    trace = traces.load(name)
    out = traces.replay_direct(trace)
    traces.check(trace, out)


def test_startup_status_reconciles_a_running_pbx() -> None:
    """A fresh start while 1001 talks, 1002 and 1003 are paused and 2 callers wait."""
    trace = traces.load("startup-status")
    msgs = [parse_message(b) for b in Splitter().feed(trace.data)]
    status = [m for m in msgs if m.get("ActionID") == "cti-2" and m.event]
    channels = [m for m in msgs if m.get("ActionID") == "cti-4" and m.event]
    out = traces.new_center(1795665190.047921)
    out.center.reconcile(status, channels)
    exp = trace.expected
    stats = out.center.stats()
    assert stats["calls_received"] == exp["driver_counts"]["offered"] == 3
    assert stats["calls_answered"] == exp["driver_counts"]["answered"] == 1
    assert stats["calls_abandoned"] == 0
    assert stats["calls_waiting"] == 2
    # The oldest caller's QueueEntry Wait in that answer.
    assert stats["longest_wait"] == max(int(m["Wait"]) for m in status if m.event == "QueueEntry")
    agents = {a["agentid"]: a for a in out.center.snapshot() if a["type"] == "AGENT"}
    assert agents["1001"]["status"] == "INCALL"
    assert agents["1002"]["status"] == "PAUSED" and agents["1002"]["reason"] == "Lunch"  # the PBX's "lunch", configured spelling
    # Paused with no reason at its login time: the login's own pause.
    assert agents["1003"]["status"] == "LOGGEDIN"
    connects = [o for o in out.center.snapshot() if o["type"] == "CONNECT"]
    assert len(connects) == 1
    conn = connects[0]
    assert conn["id"] == "1795665183.7" and conn["agent"]["agentid"] == "1001"
    assert conn["call"]["callerid"] == "5550001" and conn["call"]["status"] == "INCALL"
    # Hold of a call answered before we started is estimated from channel ages.
    caller = next(c for c in exp["callers"] if c["cid"] == "5550001")
    assert abs(out.center.stats()["average_queue_time"] - caller["holdtime_s"]) <= 1
    waiting = {o["id"]: o for o in out.center.snapshot() if o["type"] == "CALL" and o["status"] == "QUEUED"}
    assert set(waiting) == {e["Uniqueid"] for e in exp["asterisk_entries_final"]}
