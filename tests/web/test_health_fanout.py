"""HEALTH in the fan-out (issue 13): last in every HELLO answer, pushed once
per turn to every dashboard after that turn's objects and STATS, whatever
the view; nothing built while nobody listens."""

from __future__ import annotations

from twisted.internet.task import Clock

from callcenter.health import Health
from callcenter.web.fanout import Dashboards

from .test_units import Recorder, agent


def test_health_ends_the_hello_and_follows_the_changes(fake_center) -> None:
    clock = Clock()
    clock.advance(1000)
    health = Health(clock)
    hub = Dashboards(fake_center, lambda payload: payload, clock, health=health)
    hub.start()
    health.pbx_failed("connection refused")  # nobody connected: nothing to send
    a = Recorder()
    hub.hello(a)
    clock.advance(0)
    assert a.frames == [[fake_center.stats(), health.to_json()]]
    assert a.frames[0][-1]["pbx"] == {"up": False, "synced": False, "since": 1000, "error": "connection refused"}

    clock.advance(5)
    health.pbx_logged_in()
    fake_center.waiting = 1  # a STATS goes only when it changed
    fake_center.emit([agent(1)], stats=True)
    health.pbx_reconciled()  # two changes in one turn: one HEALTH, the latest
    clock.advance(0)
    assert a.frames[1] == [agent(1), fake_center.stats(), health.to_json()]
    assert a.frames[1][-1]["pbx"] == {"up": True, "synced": True, "since": 1005, "error": ""}

    health.store_state(False, "connection lost")
    clock.advance(0)
    assert a.frames[2] == [health.to_json()] and a.frames[2][0]["store"]["error"] == "connection lost"
    health.store_state(False, "connection lost")  # no change, no push
    clock.advance(0)
    assert len(a.frames) == 3
    hub.stop()
    health.store_state(True)
    clock.advance(0)
    assert len(a.frames) == 3  # unsubscribed at stop
