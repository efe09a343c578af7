"""The PBX link's health (issue 13) as the AMI client and the reconcile feed
it: refused, rejected login, logged in but not reconciled, reconciled, lost.
Everything on a fake clock against the tests' fake Asterisk."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost, DNSLookupError

from callcenter.center import Callcenter
from callcenter.health import Health, follow_pbx
from callcenter.kpi import BusinessDay

from .conftest import Rig
from .test_login_rights import T0, member


def health_rig(**options: object) -> tuple[Rig, Callcenter, Health, list[tuple[bool, bool, str]]]:
    rig = Rig(ping_interval=0, retry_initial=1.0, retry_max=4.0, auth_retry=5.0, **options)
    rig.reactor.advance(T0)
    rig.server.answer_list("CoreShowChannels", "CoreShowChannelsComplete", list, "Channels will follow")
    rig.server.answer_list("QueueStatus", "QueueStatusComplete", lambda: [member("1001")], "Queue status will follow")
    center = Callcenter(rig.reactor, business_day=BusinessDay((0, 0), ZoneInfo("UTC")))
    health = Health(rig.reactor)
    follow_pbx(health, rig.client, center)
    center.attach(rig.client)
    seen: list[tuple[bool, bool, str]] = []
    health.subscribe(lambda h: seen.append((h.pbx.up, h.pbx.synced, h.pbx.error)))
    return rig, center, health, seen


def test_refused_then_rejected_then_reconciled_then_lost() -> None:
    rig, center, health, seen = health_rig()
    assert health.to_json() == {
        "type": "HEALTH",
        "pbx": {"up": False, "synced": False, "since": int(T0), "error": "not connected yet"},
        "store": {"up": False, "since": int(T0), "error": "not connected yet"},
    }
    rig.client.startService()
    rig.net.refuse()
    assert seen == [(False, False, "connection refused")]
    assert health.pbx.since == T0  # down since the start: the error changed, not the state
    assert health.pbx_problem() == "connection refused"

    rig.server.reject = True
    rig.advance(rig.next_delay())
    rig.net.accept()
    assert seen[-1] == (False, False, "login failed")

    rig.server.reject = False
    rig.advance(rig.next_delay())
    at = rig.reactor.seconds()
    link = rig.net.accept()
    # Logged in, then the reconcile's answers came in the same pump: up, then synced.
    assert seen[-2:] == [(True, False, ""), (True, True, "")]
    assert health.pbx.since == at and health.pbx_ready and health.pbx_problem() == ""
    assert "1001" in center.agents

    rig.advance(7)
    link.close(ConnectionLost("gone"))
    assert seen[-1] == (False, False, "connection lost")
    assert health.pbx.since == at + 7


def test_logged_in_is_not_synced_until_the_reconcile_is_applied() -> None:
    rig, center, health, seen = health_rig()
    held: list[Deferred] = []
    original = rig.server.answers["QueueStatus"]

    def slow(conn, msg):  # QueueStatus answered only when the test says so
        d: Deferred = Deferred()
        d.addCallback(lambda _: conn.send(original(conn, msg)))
        held.append(d)

    rig.server.answers["QueueStatus"] = slow
    rig.client.startService()
    link = rig.net.accept()
    assert health.pbx.up and not health.pbx.synced
    assert health.pbx_problem() == "logged in, reconciling with the PBX"
    assert health.to_json()["pbx"]["synced"] is False
    held[0].callback(None)
    link.pump()
    assert health.pbx_ready and seen[-1] == (True, True, "")


def test_a_reconcile_of_an_older_session_does_not_count() -> None:
    health = Health(Rig().reactor)
    first = health.pbx_logged_in()
    health.pbx_lost()
    health.pbx_logged_in()
    health.pbx_reconciled(first)  # late: that session is gone
    assert health.pbx.up and not health.pbx.synced


def test_reasons_name_no_host() -> None:
    rig, _center, health, seen = health_rig()
    rig.client.startService()
    rig.net.refuse(DNSLookupError("pbx.internal.example"))
    assert seen == [(False, False, "host not found")]
    assert "example" not in str(health.to_json())
