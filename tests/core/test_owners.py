"""The state owners on a fake clock, driven by domain events (no AMI messages).

Expected values are the definitions of DESIGN.md applied by hand to the
scenario each test builds, never read back from the code under test.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from twisted.internet.task import Clock

from callcenter.ami import events as ev
from callcenter.center import Callcenter
from callcenter.core.counting import count_answer, uncount_answer, whole
from callcenter.kpi import BusinessDay, Counters
from callcenter.model import ABANDON, AVAIL, HANGUP, INCALL, LOGGEDIN, NA, PAUSED, QUEUED

T0 = 1795665000.0
Q, Q2 = "q-callcenter", "q-support"
IFACE = "Local/{}@agent-connect"


@pytest.fixture
def center() -> Callcenter:
    clock = Clock()
    clock.advance(T0)
    c = Callcenter(clock, sla=10, business_day=BusinessDay((0, 0), ZoneInfo("UTC")))
    c.changes = []  # type: ignore[attr-defined]
    c.subscribe(c.changes.append)  # type: ignore[attr-defined]
    return c


def member(kind: str, agent: str, ts: float, paused: bool = False, reason: str = "", queue: str = Q) -> ev.MemberChanged:
    return ev.MemberChanged(kind, queue, agent, IFACE.format(agent), paused, reason, "1", ts)


def login(c: Callcenter, agent: str, ts: float, queue: str = Q) -> None:
    c.apply(member("added", agent, ts, queue=queue))
    c.apply(member("pause", agent, ts, paused=True, queue=queue))
    c.apply(member("pause", agent, ts + 1, queue=queue))


def lines(c: Callcenter) -> list[tuple[str, str, str, int, str]]:
    return [
        (t.kind, t.ident, t.status, t.duration, t.queue)
        for ch in c.changes  # type: ignore[attr-defined]
        for t in ch.transitions
    ]


def test_rounding_is_half_up() -> None:
    assert [whole(x) for x in (0.49, 0.5, 1.5, 2.5, 5.9999999, -3.0)] == [0, 1, 2, 3, 6, 0]


def test_count_answer_and_its_inverse_restore_the_counters() -> None:
    c = Counters(answered=3, hold_answered=40, answered_in_sla=2)
    before = Counters(**c.to_record())
    count_answer(c, 7, sla=10)
    assert (c.answered, c.hold_answered, c.answered_in_sla) == (4, 47, 3)
    uncount_answer(c, 7, sla=10)
    assert c == before


def test_login_pause_is_loggedin_then_avail(center: Callcenter) -> None:
    center.apply(member("added", "1001", T0))
    center.apply(member("pause", "1001", T0, paused=True))
    assert center.agents["1001"].status == LOGGEDIN
    center.apply(member("pause", "1001", T0 + 4))
    assert center.agents["1001"].status == AVAIL
    center.apply(member("pause", "1001", T0 + 9, paused=True, reason="lunch"))
    a = center.agents["1001"]
    assert (a.status, a.reason) == (PAUSED, "Lunch")  # configured spelling of "lunch"
    # LOGGEDIN lasted 4 s, AVAIL 5 s (the 0 s AVAIL of the added-unpaused member first).
    assert [x[2:4] for x in lines(center) if x[0] == "AGENT"] == [("AVAIL", 0), ("LOGGEDIN", 4), ("AVAIL", 5)]


def test_answered_call_counts_hold_and_talk_once(center: Callcenter) -> None:
    login(center, "1001", T0)
    t = T0 + 10
    center.apply(ev.CallerAnnounced("1.1", "5550001", "Local/x;2", t))
    center.apply(ev.CallerJoined("1.1", Q, "5550001", "Local/x;2", 1, t + 1))
    center.apply(ev.CallerLeft("1.1", Q, t + 4))
    connect = ev.AgentConnected("1.1", Q, "1001", IFACE.format("1001"), "5550001", "", 3, 1, t + 4)
    center.apply(connect)
    center.apply(connect)  # a duplicate changes nothing
    assert center.agents["1001"].status == INCALL and center.calls["1.1"].status == INCALL
    done = ev.AgentCompleted("1.1", Q, "1001", IFACE.format("1001"), 9, False, t + 13)
    center.apply(done)
    center.apply(done)
    s = center.stats()
    assert (s["calls_received"], s["calls_answered"], s["average_queue_time"], s["average_handle_time"]) == (1, 1, 3, 9)
    assert s["sla"] == 100.0 and not center.calls and not center.connections
    assert [x[2:] for x in lines(center) if x[0] == "CALL"] == [
        ("NA", 1, Q), ("QUEUED", 3, Q), ("INCALL", 9, Q)]
    assert center.agents["1001"].calls_taken == 1 and center.agents["1001"].talk_time == 9


def test_abandon_needs_a_hangup_request_else_it_is_a_timeout(center: Callcenter) -> None:
    login(center, "1001", T0)
    center.apply(ev.HangupRequested("other", T0 + 1))  # the session delivers class "call"
    center.apply(ev.CallerJoined("1.1", Q, "5550001", "", 1, T0 + 2))
    center.apply(ev.CallerJoined("1.2", Q, "5550002", "", 2, T0 + 2))
    # 1.1 hangs up after 5 s: abandon.  1.2 reaches the queue timeout after 8 s.
    center.apply(ev.HangupRequested("1.1", T0 + 7))
    center.apply(ev.CallerAbandoned("1.1", Q, 5, T0 + 7))
    center.apply(ev.CallerAbandoned("1.2", Q, 8, T0 + 10))
    center.apply(ev.CallerLeft("1.2", Q, T0 + 10))
    center.apply(ev.CallerJoined("1.2", Q2, "5550002", "", 1, T0 + 10))
    # 1.3 times out and is played a message: no hang-up within the window.
    center.apply(ev.CallerJoined("1.3", Q, "5550003", "", 2, T0 + 11))
    center.clock.advance(19)
    center.apply(ev.CallerAbandoned("1.3", Q, 8, T0 + 19))
    center.clock.advance(1.5)
    assert center.calls["1.3"].status == NA  # back in the dialplan
    center.apply(ev.CallerHungUp("1.3", T0 + 21))
    s = center.stats()
    assert (s["calls_received"], s["calls_abandoned"], s["calls_timeout"]) == (4, 1, 2)
    assert s["average_abandoned_time"] == 5
    assert s["queues"][Q2]["calls_waiting"] == 1 and s["queues"][Q]["calls_waiting"] == 0
    queued = [x[2:] for x in lines(center) if x[0] == "CALL" and x[2] == QUEUED]
    assert queued == [(QUEUED, 5, Q), (QUEUED, 8, Q), (QUEUED, 8, Q)]


def test_left_unanswered_and_hung_up_later_is_a_timeout_whose_wait_ends_at_leaving(
    center: Callcenter,
) -> None:
    """Left the queue at +5 (no abandon seen), hung up at +9: a timeout whose
    QUEUED line lasts the 3 s it waited, then NA until the hang-up (DESIGN.md:
    a line's duration is the time spent in that status)."""
    center.apply(ev.CallerJoined("1.1", Q, "5550001", "", 1, T0 + 2))
    center.apply(ev.CallerLeft("1.1", Q, T0 + 5))
    center.clock.advance(9)
    center.apply(ev.CallerHungUp("1.1", T0 + 9))
    s = center.stats()
    assert (s["calls_received"], s["calls_abandoned"], s["calls_timeout"]) == (1, 0, 1)
    assert [x[2:4] for x in lines(center) if x[0] == "CALL"] == [(QUEUED, 3), (NA, 4)]


def test_a_missed_hangup_request_is_still_an_abandon(center: Callcenter) -> None:
    """The request fell in a gap, but the hang-up follows within the window."""
    center.apply(ev.HangupRequested("other", T0))
    center.apply(ev.CallerJoined("1.1", Q, "5550001", "", 1, T0 + 2))
    center.apply(ev.CallerAbandoned("1.1", Q, 4, T0 + 6))
    center.apply(ev.CallerLeft("1.1", Q, T0 + 6))
    center.apply(ev.CallerHungUp("1.1", T0 + 6.01))
    s = center.stats()
    assert (s["calls_abandoned"], s["calls_timeout"], s["average_abandoned_time"]) == (1, 0, 4)
    assert [x[2:4] for x in lines(center) if x[0] == "CALL"] == [(QUEUED, 4)]


def test_transfer_join_before_its_agent_complete_is_held(center: Callcenter) -> None:
    login(center, "1001", T0)
    center.apply(ev.CallerJoined("1.1", Q, "5550001", "", 1, T0 + 2))
    center.apply(ev.AgentConnected("1.1", Q, "1001", IFACE.format("1001"), "5550001", "", 1, 1, T0 + 3))
    # The new queue entry arrives first (gotcha 21), then the transfer's AgentComplete.
    center.apply(ev.CallerJoined("1.1", Q2, "5550001", "", 1, T0 + 5))
    center.apply(ev.AgentCompleted("1.1", Q, "1001", IFACE.format("1001"), 2, True, T0 + 5.01))
    call = center.calls["1.1"]
    assert (call.status, call.queue) == (QUEUED, Q2)
    s = center.stats()
    assert s["queues"][Q]["calls_answered"] == 1 and s["queues"][Q2]["calls_received"] == 1
    assert s["queues"][Q]["average_handle_time"] == 2


def test_complete_before_connect_still_ends_the_call(center: Callcenter) -> None:
    login(center, "1001", T0)
    center.apply(ev.CallerJoined("1.1", Q, "5550001", "", 1, T0 + 2))
    center.apply(ev.AgentCompleted("1.1", Q, "1001", IFACE.format("1001"), 4, False, T0 + 9))
    center.apply(ev.AgentConnected("1.1", Q, "1001", IFACE.format("1001"), "5550001", "", 3, 1, T0 + 5))
    assert not center.calls and not center.connections
    assert center.agents["1001"].status == AVAIL
    s = center.stats()
    assert (s["calls_answered"], s["average_handle_time"]) == (1, 4)


def test_ivr_callers_without_hangup_expire_by_age(center: Callcenter) -> None:
    center.start()
    center.apply(ev.CallerAnnounced("1.1", "5550001", "", T0))
    assert center.calls["1.1"].status == NA
    center.clock.advance(center.ivr_max_age + 600)
    assert "1.1" not in center.calls
    assert ("CALL", "5550001", NA) in [x[:3] for x in lines(center)]
    assert center.stats()["calls_received"] == 0  # never queued: no KPI
    center.stop()


def test_grace_closes_a_call_whose_agent_complete_never_comes(center: Callcenter) -> None:
    login(center, "1001", T0)
    center.apply(ev.CallerJoined("1.1", Q, "5550001", "", 1, T0 + 2))
    center.apply(ev.AgentConnected("1.1", Q, "1001", IFACE.format("1001"), "5550001", "", 1, 1, T0 + 3))
    center.clock.advance(13)
    center.apply(ev.CallerHungUp("1.1", center.clock.seconds()))
    assert center.calls["1.1"].status == INCALL
    center.clock.advance(5)
    assert "1.1" not in center.calls and center.agents["1001"].status == AVAIL
    assert center.stats()["average_handle_time"] == 10  # from the connect at +3 to the hang-up at +13
    assert [x[2:4] for x in lines(center) if x[0] == "CALL"][-1] == (INCALL, 10)
    assert HANGUP not in {c.status for c in center.calls.values()}


def test_removed_agent_in_call_keeps_the_call_until_complete(center: Callcenter) -> None:
    login(center, "1001", T0)
    center.apply(ev.CallerJoined("1.1", Q, "5550001", "", 1, T0 + 2))
    center.apply(ev.AgentConnected("1.1", Q, "1001", IFACE.format("1001"), "5550001", "", 1, 1, T0 + 3))
    center.apply(ev.MemberRemoved(Q, "1001", IFACE.format("1001"), T0 + 5))
    assert "1001" not in center.agents and "1.1" in center.connections
    center.apply(ev.AgentCompleted("", Q, "1001", IFACE.format("1001"), 6, False, T0 + 9))
    assert not center.connections and not center.calls
    assert center.stats()["average_handle_time"] == 6
    assert ABANDON not in [x[2] for x in lines(center)]
