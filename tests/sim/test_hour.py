"""One simulated hour on a Clock: the ground-truth counters are self-consistent,
agree with the event stream a CTI receives, and with Asterisk's own QueueStatus."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from callcenter.simulator.clock import run_for

from .tracekit import Session, login, make_pbx

RATE = 4.0  # calls per minute per queue
QUEUES = ("q-callcenter", "q-support")


@pytest.fixture(scope="module")
def hour():
    pbx, clock = make_pbx(agents=8, calls_per_minute=RATE, queues=QUEUES, seed=3)
    s = Session(pbx)
    login(s)
    pbx.start()
    run_for(clock, 3600)
    msgs = s.read()
    s.action("QueueStatus", ActionID="end")
    status = s.read()
    return pbx, msgs, status


def test_counters_are_consistent(hour):
    pbx, _msgs, _status = hour
    for name, t in pbx.truth().items():
        # Every caller who entered the queue is answered, abandoned or still waiting.
        assert t["offered"] == t["answered"] + t["abandoned"] + t["waiting"], name
        assert t["answered"] == t["completed"] + t["connected"], name
        assert 0 <= t["connected"] <= 8 and t["waiting"] >= 0
        assert t["completed_by_caller"] <= t["completed"]
        assert t["answered_in_sl"] <= t["answered"] and t["abandoned_in_sl"] <= t["abandoned"]
        # A Poisson process at RATE for an hour (plus 2 opening callers): 240 +- 4 sigma.
        assert 240 - 62 <= t["offered"] <= 242 + 62, (name, t["offered"])
        assert t["answered"] > t["abandoned"] > 0
        mean_talk = t["talk_completed"] / t["completed"]
        assert 30 < mean_talk < 65, mean_talk  # exponential, mean 45 s, at least 5 s
        assert t["hold_answered"] / t["answered"] >= 1.0  # one ring of one second at least
        assert t["hold_abandoned"] / t["abandoned"] > 0


def test_counters_match_the_events(hour):
    pbx, msgs, _status = hour
    count: dict[str, Counter] = defaultdict(Counter)
    hold_int: dict[str, int] = Counter()
    for m in msgs:
        if m.kind == "Event" and "Queue" in m:
            count[m["Queue"]][m.name] += 1
            if m.name == "AgentConnect":
                hold_int[m["Queue"]] += int(m["HoldTime"])
    for name, t in pbx.truth().items():
        c = count[name]
        assert c["QueueCallerJoin"] == t["offered"]
        assert c["AgentConnect"] == t["answered"]
        assert c["QueueCallerAbandon"] == t["abandoned"]
        assert c["AgentComplete"] == t["completed"]
        assert c["AgentRingNoAnswer"] == t["ring_no_answer"]
        assert c["QueueCallerLeave"] == t["answered"] + t["abandoned"]
        # Whole-second HoldTime vs exact hold: each differs by less than a second.
        assert abs(hold_int[name] - t["hold_answered"]) < t["answered"]


def test_counters_match_queue_status(hour):
    pbx, _msgs, status = hour
    params = {m["Queue"]: m for m in status if m.name == "QueueParams"}
    for name, t in pbx.truth().items():
        p = params[name]
        assert int(p["Completed"]) == t["completed"]
        assert int(p["Abandoned"]) == t["abandoned"]
        assert int(p["Calls"]) == t["waiting"]
        entries = [m for m in status if m.name == "QueueEntry" and m["Queue"] == name]
        assert len(entries) == t["waiting"]
        in_call = [m for m in status if m.name == "QueueMember" and m["Queue"] == name
                   and m["InCall"] == "1"]
        assert len(in_call) == t["connected"]


def test_agents_were_lively(hour):
    _pbx, msgs, _status = hour
    pauses = [m for m in msgs if m.name == "QueueMemberPause" and m["Paused"] == "1"
              and m["PausedReason"]]
    assert len({m["MemberName"] for m in pauses}) >= 5
    assert sum(1 for m in msgs if m.name == "UserEvent" and m["UserEvent"] == "LOGGEDOUT") >= 1
