"""Callcenter behaviour on a fake clock: duplicates, disorder, bad values,
reconciliation, commands and the business day."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer

from callcenter.ami.message import Message
from callcenter.center import COMPLETE_GRACE, UnknownAgent

from . import traces

T0 = 1795665000.0
Q = "q-callcenter"


def ev(name: str, ts: float | None = None, **headers: str) -> Message:
    pairs = [("Event", name), ("Privilege", "agent,all")]
    if ts is not None:
        pairs.append(("Timestamp", f"{ts:.6f}"))
    pairs.extend(headers.items())
    return Message(pairs)


def member(name: str, agent: str, ts: float, paused: str = "0", reason: str = "", **kw: str) -> Message:
    return ev(
        name,
        ts,
        Queue=kw.pop("Queue", Q),
        MemberName=agent,
        Interface=f"Local/{agent}@agent-connect",
        Paused=paused,
        PausedReason=reason,
        InCall=kw.pop("InCall", "0"),
        Status=kw.pop("Status", "1"),
        **kw,
    )


def caller(name: str, uid: str, ts: float, **kw: str) -> Message:
    return ev(name, ts, Channel=f"Local/113@public-0000{uid};2", CallerIDNum="555" + uid, Uniqueid=uid, **kw)


def login(center: Any, agent: str, ts: float) -> None:
    center.handle_event(member("QueueMemberAdded", agent, ts))
    center.handle_event(member("QueueMemberPause", agent, ts, paused="1"))
    center.handle_event(member("QueueMemberPause", agent, ts + 1, paused="0"))


def answered_call(uid: str, agent: str, t: float, hold: int = 2, talk: int = 5) -> list[Message]:
    return [
        ev("UserEvent", t, UserEvent="CALLER", Uniqueid=uid, CallerIDNum="555" + uid),
        caller("QueueCallerJoin", uid, t, Queue=Q, Position="1", Count="1"),
        caller("QueueCallerLeave", uid, t + hold, Queue=Q, Position="1", Count="0"),
        caller(
            "AgentConnect", uid, t + hold, Queue=Q, MemberName=agent,
            Interface=f"Local/{agent}@agent-connect", HoldTime=str(hold), RingTime="1",
        ),
        caller(
            "AgentComplete", uid, t + hold + talk, Queue=Q, MemberName=agent,
            Interface=f"Local/{agent}@agent-connect", HoldTime=str(hold), TalkTime=str(talk),
            Reason="agent",
        ),
    ]


@pytest.fixture
def out() -> traces.Outcome:
    return traces.new_center(T0)


def test_every_event_twice_counts_once() -> None:
    trace = traces.load("answered")
    once = traces.replay_direct(trace)
    twice = traces.new_center(trace.start)
    for t, msg in trace.messages():
        if t > twice.clock.seconds():
            twice.clock.advance(t - twice.clock.seconds())
        twice.center.handle_event(msg)
        twice.center.handle_event(msg)
    twice.clock.advance(10)
    assert twice.center.stats() == once.center.stats()
    assert twice.lines == once.lines
    traces.check(trace, twice)


def test_agent_complete_without_channel_fields(out: traces.Outcome) -> None:
    c = out.center
    login(c, "1003", T0)
    msgs = answered_call("9.1", "1003", T0 + 5, hold=1, talk=9)
    for m in msgs[:-1]:
        c.handle_event(m)
    # As seen on a real Asterisk: no Channel/Uniqueid/Dest* fields at all.
    c.handle_event(ev(
        "AgentComplete", T0 + 15, Queue=Q, Interface="Local/1003@agent-connect",
        MemberName="1003", HoldTime="1", TalkTime="9", Reason="agent",
    ))
    stats = c.stats()
    assert stats["calls_answered"] == 1 and stats["average_handle_time"] == 9
    assert c.agents["1003"].status == "AVAIL" and not c.connections and not c.calls
    assert "CALL;5559.1;INCALL;9;q-callcenter;9.1" in "".join(out.lines)


def test_caller_hangup_before_agent_complete_waits_for_asterisk_talk_time(out: traces.Outcome) -> None:
    c = out.center
    login(c, "1001", T0)
    msgs = answered_call("9.2", "1001", T0 + 5, hold=2, talk=6)
    for m in msgs[:-1]:
        c.handle_event(m)
    out.clock.advance(T0 + 13 - out.clock.seconds())
    c.handle_event(caller("Hangup", "9.2", T0 + 13, Cause="16"))
    assert c.calls["9.2"].status == "INCALL"  # not closed on our guess yet
    c.handle_event(msgs[-1])  # AgentComplete, TalkTime 6
    assert c.stats()["average_handle_time"] == 6
    assert "9.2" not in c.calls and c.stats()["connections_online"] == 0
    out.clock.advance(COMPLETE_GRACE * 2)
    assert c.stats()["calls_answered"] == 1
    assert sum(";INCALL;" in line and "9.2" in line for line in out.lines) == 1


def test_caller_hangup_without_agent_complete_closes_after_grace(out: traces.Outcome) -> None:
    c = out.center
    login(c, "1001", T0)
    msgs = answered_call("9.3", "1001", T0 + 5, hold=2, talk=6)
    for m in msgs[:-1]:
        c.handle_event(m)
    out.clock.advance(T0 + 11 - out.clock.seconds())
    c.handle_event(ev("UserEvent", T0 + 11, UserEvent="CALLERHANGUP", Uniqueid="9.3"))
    out.clock.advance(COMPLETE_GRACE + 0.1)
    assert "9.3" not in c.calls
    assert c.agents["1001"].status == "AVAIL"
    assert c.stats()["average_handle_time"] == 4  # hung up 4 s after the answer
    c.handle_event(msgs[-1])  # a late AgentComplete changes nothing
    assert c.book.total().completed == 1


def test_logged_out_for_unknown_agent_and_junk_change_nothing(out: traces.Outcome) -> None:
    c = out.center
    login(c, "1001", T0)
    before = (c.snapshot(), list(out.lines))
    c.handle_event(ev("UserEvent", T0 + 2, UserEvent="LOGGEDOUT", agentid="7777", member="Local/7777@x"))
    c.handle_event(ev("QueueMemberRemoved", T0 + 2, Queue=Q, MemberName="7777", Interface="Local/7777@x"))
    c.handle_event(ev("AgentComplete", T0 + 2, Queue=Q, MemberName="7777", Interface="Local/7777@x"))
    c.handle_event(ev("QueueCallerAbandon", T0 + 2, Queue=Q, Uniqueid="nope", HoldTime="3"))
    c.handle_event(ev("QueueCallerJoin", T0 + 2))  # no Uniqueid / Queue: logged, skipped
    c.handle_event(ev("SomethingNew", T0 + 2, Foo="bar"))
    c.handle_event(Message([]))
    assert (c.snapshot(), out.lines) == before


def test_call_connected_to_an_agent_who_just_logged_out_counts(out: traces.Outcome) -> None:
    c = out.center
    login(c, "1001", T0)
    msgs = answered_call("9.10", "1001", T0 + 5, hold=2, talk=5)
    for m in msgs[:2]:
        c.handle_event(m)
    c.handle_event(member("QueueMemberRemoved", "1001", T0 + 6))  # 022 while ringing
    for m in msgs[2:4]:
        c.handle_event(m)
    conn = next(o for o in c.snapshot() if o["type"] == "CONNECT")
    assert conn["agent"]["agentid"] == "1001"
    c.handle_event(msgs[4])
    stats = c.stats()
    assert (stats["calls_answered"], stats["average_handle_time"], stats["connections_online"]) == (1, 5, 0)
    assert "1001" not in c.agents


def test_non_numeric_hold_time_falls_back_to_event_times(out: traces.Outcome) -> None:
    c = out.center
    login(c, "1001", T0)
    msgs = answered_call("9.4", "1001", T0 + 5, hold=3, talk=4)
    msgs[3] = caller(
        "AgentConnect", "9.4", T0 + 8, Queue=Q, MemberName="1001",
        Interface="Local/1001@agent-connect", HoldTime="three", RingTime="1",
    )
    for m in msgs:
        c.handle_event(m)
    stats = c.stats()
    assert stats["calls_answered"] == 1 and stats["average_queue_time"] == 3


def test_redundant_unpause_changes_nothing(out: traces.Outcome) -> None:
    c = out.center
    login(c, "1001", T0)
    seen: list[Any] = []
    c.subscribe(seen.append)
    c.handle_event(member("QueueMemberPause", "1001", T0 + 3, paused="0"))
    assert seen == []


def test_pause_during_call_survives_the_call(out: traces.Outcome) -> None:
    c = out.center
    login(c, "1001", T0)
    msgs = answered_call("9.5", "1001", T0 + 5, hold=1, talk=10)
    for m in msgs[:-1]:
        c.handle_event(m)
    c.handle_event(member("QueueMemberPause", "1001", T0 + 8, paused="1", reason="after call work", InCall="1"))
    assert c.agents["1001"].status == "INCALL"
    c.handle_event(msgs[-1])
    agent = c.agents["1001"].to_json()
    assert agent["status"] == "PAUSED" and agent["reason"] == "after call work"


def test_login_states(out: traces.Outcome) -> None:
    c = out.center
    c.handle_event(member("QueueMemberAdded", "1001", T0))
    c.handle_event(member("QueueMemberPause", "1001", T0, paused="1"))
    assert c.agents["1001"].status == "LOGGEDIN"
    c.handle_event(member("QueueMemberPause", "1001", T0 + 1, paused="0"))
    assert c.agents["1001"].status == "AVAIL"
    c.handle_event(member("QueueMemberPause", "1001", T0 + 2, paused="1"))
    assert c.agents["1001"].status == "PAUSED" and c.agents["1001"].to_json()["reason"] == ""
    c.handle_event(member("QueueMemberRemoved", "1001", T0 + 3, paused="1"))
    assert "1001" not in c.agents
    assert out.lines[-1].split(";")[1:6] == ["AGENT", "1001", "PAUSED", "1", Q]


def test_member_added_already_paused(out: traces.Outcome) -> None:
    """QueueAdd with Paused (FreePBX-style): no separate pause event follows."""
    c = out.center
    c.handle_event(member("QueueMemberAdded", "1001", T0, paused="1", reason="training"))
    c.handle_event(member("QueueMemberAdded", "1002", T0, paused="1"))
    # "training" is the default --pause-reasons' "Training": shown in that spelling.
    assert c.agents["1001"].status == "PAUSED" and c.agents["1001"].to_json()["reason"] == "Training"
    assert c.agents["1002"].status == "LOGGEDIN"


def test_two_queues_agent_paused_in_one_is_available(out: traces.Outcome) -> None:
    c = out.center
    for q in (Q, "q-support"):
        c.handle_event(member("QueueMemberAdded", "1001", T0, Queue=q))
    c.handle_event(member("QueueMemberPause", "1001", T0 + 1, paused="1", reason="break", Queue=Q))
    assert c.agents["1001"].status == "AVAIL"
    c.handle_event(member("QueueMemberPause", "1001", T0 + 1, paused="1", reason="break", Queue="q-support"))
    assert c.agents["1001"].status == "PAUSED"
    stats = c.stats()
    assert stats["agents_online"] == 1
    assert stats["queues"][Q]["agents_online"] == stats["queues"]["q-support"]["agents_online"] == 1


class FakeAMI:
    def __init__(self, fail: str | None = None) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.fail = fail
        self.listeners: dict[str, Any] = {}
        self.hooks: list[Any] = []
        self.answers: dict[str, list[Message]] = {}

    def action(self, name: str, **headers: str) -> defer.Deferred:
        self.sent.append((name, headers))
        if self.fail:
            return defer.fail(RuntimeError(self.fail))
        return defer.succeed(Message([("Response", "Success")]))

    def list_action(self, name: str, **headers: str) -> defer.Deferred:
        self.sent.append((name, headers))
        return defer.succeed([Message([("Response", "Success")]), *self.answers.get(name, [])])

    def add_listener(self, name: str, fn: Any) -> None:
        self.listeners[name] = fn

    def add_connect_hook(self, fn: Any) -> None:
        self.hooks.append(fn)


def test_pause_and_unpause_send_queue_pause(out: traces.Outcome) -> None:
    c = out.center
    ami = FakeAMI()
    c.attach(ami)
    login(c, "1001", T0)
    results: list[Any] = []
    c.pause("1001", "lunch").addCallback(results.append)
    c.unpause("1001").addCallback(results.append)
    assert results == [None, None]
    assert ami.sent == [
        ("QueuePause", {"Interface": "Local/1001@agent-connect", "Paused": "true", "Queue": Q, "Reason": "Lunch"}),  # configured spelling
        ("QueuePause", {"Interface": "Local/1001@agent-connect", "Paused": "false", "Queue": Q}),
    ]
    errors: list[Any] = []
    c.pause("4242").addErrback(errors.append)
    assert errors[0].check(UnknownAgent) and str(errors[0].value) == "unknown agent 4242"
    c.pause("1001", "bad\r\nAction: Originate").addErrback(errors.append)
    assert errors[1].check(ValueError)
    assert len(ami.sent) == 2  # nothing reached the PBX


def test_ami_error_reaches_the_caller(out: traces.Outcome) -> None:
    c = out.center
    c.attach(FakeAMI(fail="Interface not found"))
    login(c, "1001", T0)
    errors: list[Any] = []
    c.pause("1001").addErrback(errors.append)
    assert str(errors[0].value) == "Interface not found"


def queue_member(agent: str, paused: str = "0", reason: str = "", in_call: str = "0") -> Message:
    return Message([
        ("Event", "QueueMember"), ("Queue", Q), ("Name", agent),
        ("Location", f"Local/{agent}@agent-connect"), ("StateInterface", f"Local/{agent}@agent-connect"),
        ("Membership", "dynamic"), ("Penalty", "0"), ("CallsTaken", "0"), ("LastCall", "0"),
        ("LastPause", "1"), ("LoginTime", "0"), ("InCall", in_call), ("Status", "1"),
        ("Paused", paused), ("PausedReason", reason), ("Wrapuptime", "0"), ("ActionID", "x"),
    ])


def test_reconcile_after_reconnect(out: traces.Outcome) -> None:
    """While we were disconnected: 1001 was paused, 1002's call ended, a caller
    gave up, 1003 logged in.  Each is fixed once, reported once, counted once."""
    c = out.center
    ami = FakeAMI()
    c.attach(ami)
    login(c, "1001", T0)
    login(c, "1002", T0)
    for m in answered_call("9.6", "1002", T0 + 5, hold=2, talk=5)[:-1]:
        c.handle_event(m)
    c.handle_event(ev("UserEvent", T0 + 6, UserEvent="CALLER", Uniqueid="9.7", CallerIDNum="5559.7"))
    c.handle_event(caller("QueueCallerJoin", "9.7", T0 + 6, Queue=Q, Position="1", Count="1"))
    out.clock.advance(T0 + 30 - out.clock.seconds())
    ami.answers["QueueStatus"] = [
        queue_member("1001", paused="1", reason="meeting"),
        queue_member("1002"),
        queue_member("1003"),
    ]
    ami.answers["CoreShowChannels"] = []
    lines_before = len(out.lines)
    for hook in ami.hooks:
        hook()
    a = {x["agentid"]: x for x in c.snapshot() if x["type"] == "AGENT"}
    assert a["1001"]["status"] == "PAUSED" and a["1001"]["reason"] == "meeting"
    assert a["1002"]["status"] == "AVAIL" and a["1003"]["status"] == "AVAIL"
    assert not c.calls and not c.connections
    stats = c.stats()
    assert (stats["calls_received"], stats["calls_answered"], stats["calls_abandoned"]) == (2, 1, 1)
    new = [line.split(";") for line in out.lines[lines_before:]]
    assert sorted((r[1], r[2], r[3]) for r in new) == [
        ("AGENT", "1001", "AVAIL"),
        ("AGENT", "1002", "INCALL"),
        ("CALL", "5559.6", "INCALL"),
        ("CALL", "5559.7", "QUEUED"),
    ]
    # A second reconnect with the same truth changes and counts nothing more.
    for hook in ami.hooks:
        hook()
    assert c.stats() == stats and len(out.lines) == lines_before + 4


def test_resync_ignores_entities_changed_while_it_ran(out: traces.Outcome) -> None:
    c = out.center
    ami = FakeAMI()
    c.attach(ami)
    pending: defer.Deferred = defer.Deferred()
    ami.list_action = lambda name, **h: (  # type: ignore[method-assign]
        pending if name == "QueueStatus" else defer.succeed([Message([("Response", "Success")])])
    )
    c.resync()
    # A caller joins after Asterisk took its snapshot but before we read it.
    c.handle_event(caller("QueueCallerJoin", "9.8", T0 + 1, Queue=Q, Position="1", Count="1"))
    pending.callback([Message([("Response", "Success")])])
    assert c.calls["9.8"].status == "QUEUED"
    assert c.stats()["calls_abandoned"] == 0


def test_unknown_logged_in_asks_the_pbx(out: traces.Outcome) -> None:
    c = out.center
    ami = FakeAMI()
    c.attach(ami)
    ami.answers["QueueStatus"] = [queue_member("1005", paused="1")]
    c.handle_event(ev("UserEvent", T0, UserEvent="LOGGEDIN", agentid="1005", member="Local/1005@agent-connect"))
    out.clock.advance(0)
    assert c.agents["1005"].status in ("PAUSED", "LOGGEDIN")


@pytest.mark.parametrize("starts_at", [(0, 0), (6, 0)])
def test_business_day_rollover(starts_at: tuple[int, int]) -> None:
    from datetime import datetime

    from callcenter.center import Callcenter
    from callcenter.kpi import BusinessDay

    h, m = starts_at
    boundary = datetime(2026, 11, 27, h, m, tzinfo=traces.UTC).timestamp()
    out = traces.new_center(boundary - 60)
    c = Callcenter(out.clock, business_day=BusinessDay(starts_at, traces.UTC))
    c.start()
    rolled: list[Any] = []
    c.subscribe(lambda ch: rolled.extend(ch.rolled))
    login(c, "1001", boundary - 60)
    day1 = c.book.day
    # Joins before the boundary, answered after it: counted in day 1 only.
    msgs = answered_call("9.9", "1001", boundary - 5, hold=20, talk=30)
    for msg in msgs[:2]:
        c.handle_event(msg)
    out.clock.advance(boundary + 1 - out.clock.seconds())  # the day turns with no event at all
    assert [b.day for b in rolled] == [day1]
    assert c.book.day != day1 and c.stats()["day"] == c.book.day
    assert c.stats()["calls_received"] == 0
    for msg in msgs[2:]:
        c.handle_event(msg)
    assert c.stats()["calls_answered"] == 0
    past = c.past[day1].total()
    assert (past.received, past.answered, past.completed) == (1, 1, 1)
    c.stop()


def test_phone_device_state_is_shown(out: traces.Outcome) -> None:
    c = out.center
    login(c, "1001", T0)
    assert c.agents["1001"].to_json()["device"] == "NOT_INUSE"
    c.handle_event(member("QueueMemberStatus", "1001", T0 + 5, Status="5"))  # phone unregistered
    agent = c.agents["1001"].to_json()
    assert agent["device"] == "UNAVAILABLE" and agent["status"] == "AVAIL"
    c.handle_event(member("QueueMemberStatus", "1001", T0 + 6, Status="bogus"))
    assert c.agents["1001"].to_json()["device"] == "UNAVAILABLE"


def test_queue_timeouts_are_counted_once(out: traces.Outcome) -> None:
    """Timeout in q-callcenter, overflow to q-support where it is answered; a
    second caller times out and hangs up in voicemail."""
    c = out.center
    for q in (Q, "q-support"):
        c.handle_event(member("QueueMemberAdded", "1001", T0, Queue=q))
    c.handle_event(caller("QueueCallerJoin", "8.1", T0 + 1, Queue=Q, Position="1", Count="1"))
    c.handle_event(caller("QueueCallerLeave", "8.1", T0 + 16, Queue=Q, Position="1", Count="0"))
    assert c.stats()["calls_waiting"] == 0 and c.stats()["calls_timeout"] == 0  # not known yet
    c.handle_event(caller("QueueCallerJoin", "8.1", T0 + 17, Queue="q-support", Position="1", Count="1"))
    c.handle_event(caller("QueueCallerLeave", "8.1", T0 + 19, Queue="q-support", Position="1", Count="0"))
    c.handle_event(caller(
        "AgentConnect", "8.1", T0 + 19, Queue="q-support", MemberName="1001",
        Interface="Local/1001@agent-connect", HoldTime="2", RingTime="1",
    ))
    c.handle_event(caller("QueueCallerJoin", "8.2", T0 + 20, Queue=Q, Position="1", Count="1"))
    c.handle_event(caller("QueueCallerLeave", "8.2", T0 + 35, Queue=Q, Position="1", Count="0"))
    c.handle_event(caller("Hangup", "8.2", T0 + 50, Cause="16"))
    c.handle_event(caller("Hangup", "8.2", T0 + 50, Cause="16"))  # twice: still once
    stats = c.stats()
    assert (stats["calls_received"], stats["calls_answered"], stats["calls_abandoned"], stats["calls_timeout"]) == (
        3, 1, 0, 2
    )
    assert stats["queues"][Q]["calls_timeout"] == 2 and stats["queues"]["q-support"]["calls_timeout"] == 0
    assert stats["queues"]["q-support"]["calls_answered"] == 1
