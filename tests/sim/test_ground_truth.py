"""End to end: the service's KPIs against the simulator's ground truth.

The simulator listens on loopback (real reactor, real TCP); the service's own
``AMIClient`` logs in and feeds a ``Callcenter``.  The simulated time is a
Clock shared by the model and the ``Callcenter``; after each simulated second
a ``Ping`` round trip makes sure the client has handled every event sent so
far.  One simulated hour of two queues runs in a few wall seconds.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint

from callcenter.ami.client import AMIClient
from callcenter.center import Callcenter
from callcenter.simulator import start_simulator
from callcenter.simulator.clock import FastClock, run_for

QUEUES = ("q-callcenter", "q-support")


@pytest_twisted.inlineCallbacks
def test_service_kpis_match_the_simulated_truth():
    from twisted.internet import reactor

    clock = FastClock()
    # 09:00 local time: the hour stays inside one business day.
    clock.advance(datetime.now().replace(hour=9, minute=0, second=0, microsecond=0).timestamp())
    port, pbx = yield start_simulator(reactor, username="callcenter", secret="gt-secret",
                                      agents=8, calls_per_minute=4.0, queues=QUEUES, seed=11,
                                      clock=clock)
    # The simulated queues' wrapuptime (entities.QueueConfig), as --simulate sets it.
    center = Callcenter(clock, sla=10, wrapup_default=2)
    seen: list[tuple[float, dict]] = []
    center.subscribe(lambda ch: seen.extend((ch.ts, o) for o in ch.objects if o["type"] == "AGENT"))
    client = AMIClient(reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
                       "callcenter", "gt-secret", ping_interval=0)
    center.attach(client)
    client.startService()
    try:
        yield client.whenConnected()
        yield client.action("Ping")
        yield task.deferLater(reactor, 0.1, lambda: None)  # the resync after connect
        for _ in range(3600):
            run_for(clock, 1.0)
            yield client.action("Ping")  # every event written before it has been handled
        stats = center.stats()
        truth = pbx.truth()
    finally:
        center.stop()
        yield defer.maybeDeferred(client.stopService)
        yield pbx.stop()

    # Issue 15: the simulated phones ring (AgentCalled) and wrap up like Asterisk's:
    # no agent rings before its wrap-up is over; agents have names (from the
    # login's LOGGEDIN, just after the member events); reasons are the
    # configured ones, in their spelling.
    wrapup: dict[str, int] = {}
    names: dict[str, str] = {}
    rings = 0
    for ts, a in seen:
        if a["ringing"] and a["agentid"] in wrapup:
            assert ts >= wrapup[a["agentid"]] - 1, (ts, a)  # Asterisk's whole-second clock
            rings += 1
        if a["status"] != "LOGGEDOUT":
            wrapup[a["agentid"]] = a["wrapup_until"]
            names[a["agentid"]] = a["name"]
            assert a.get("reason", "") in ("", "Break", "Lunch", "Training", "Coaching"), a
    assert rings > 50 and any(a["wrapup_until"] for _, a in seen)
    assert len(names) == 8 and all(names.values()), names

    total_offered = 0
    for name in QUEUES:
        t, s = truth[name], stats["queues"][name]
        total_offered += t["offered"]
        assert s["calls_received"] == t["offered"], name
        assert s["calls_answered"] == t["answered"], name
        assert s["calls_abandoned"] == t["abandoned"], name
        assert s["calls_waiting"] == t["waiting"], name
        assert s["connections_online"] == t["connected"], name
        # Means of the whole-second HoldTime/TalkTime the PBX reported, exactly,
        # and within a second of the exact simulated times.
        def mean(total: int, n: int) -> int:
            return int(total / n + 0.5)

        assert s["average_queue_time"] == mean(t["hold_answered_s"], t["answered"]), name
        assert s["average_abandoned_time"] == mean(t["hold_abandoned_s"], t["abandoned"]), name
        assert s["average_handle_time"] == mean(t["talk_completed_s"], t["completed"]), name
        assert s["average_queue_time"] == pytest.approx(t["hold_answered"] / t["answered"], abs=1)
        assert s["average_abandoned_time"] == pytest.approx(
            t["hold_abandoned"] / t["abandoned"], abs=1)
        assert s["average_handle_time"] == pytest.approx(
            t["talk_completed"] / t["completed"], abs=1)
        assert s["sla"] == round(100.0 * t["answered_in_sl"] / t["answered"], 2), name
        assert s["sla_with_abandoned"] == round(
            100.0 * (t["answered_in_sl"] + t["abandoned_in_sl"]) / (t["answered"] + t["abandoned"]), 2
        ), name
        assert s["abandon_rate"] == round(100.0 * t["abandoned"] / t["offered"], 2), name
    assert stats["calls_received"] == total_offered > 300
