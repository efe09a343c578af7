"""Review of the center on situations a real call center hits: overflow to a
second queue, timeouts, transfers, agents in two queues or removed mid-call,
reconcile and the report's columns."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.ami.message import Message

from . import traces
from .test_center import T0, FakeAMI, Q, answered_call, caller, ev, login, member, queue_member

S = "q-support"


@pytest.fixture
def out() -> traces.Outcome:
    return traces.new_center(T0)


def rows(out: traces.Outcome, uid: str) -> list[tuple[str, int, str]]:
    """(status, duration, queue) of a call's report lines."""
    parts = [line.rstrip("\n").split(";") for line in out.lines]
    return [(r[3], int(r[4]), r[5]) for r in parts if r[1] == "CALL" and r[6] == uid]


def at(out: traces.Outcome, t: float) -> None:
    if t > out.clock.seconds():
        out.clock.advance(t - out.clock.seconds())


def join(uid: str, t: float, queue: str = Q) -> Message:
    return caller("QueueCallerJoin", uid, t, Queue=queue, Position="1", Count="1")


def leave(uid: str, t: float, queue: str = Q) -> Message:
    return caller("QueueCallerLeave", uid, t, Queue=queue, Position="1", Count="0")


def connect(uid: str, agent: str, t: float, hold: int, queue: str = Q) -> Message:
    return caller(
        "AgentConnect", uid, t, Queue=queue, MemberName=agent,
        Interface=f"Local/{agent}@agent-connect", HoldTime=str(hold), RingTime="1",
    )


def complete(uid: str, agent: str, t: float, hold: int, talk: int, queue: str = Q, reason: str = "agent") -> Message:
    return caller(
        "AgentComplete", uid, t, Queue=queue, MemberName=agent,
        Interface=f"Local/{agent}@agent-connect", HoldTime=str(hold), TalkTime=str(talk), Reason=reason,
    )


def per_queue_sums_match(stats: dict[str, Any]) -> None:
    for key in ("calls_received", "calls_answered", "calls_abandoned", "calls_waiting", "connections_online"):
        assert stats[key] == sum(q[key] for q in stats["queues"].values()), key


def test_overflow_to_a_second_queue_moves_the_wait(out: traces.Outcome) -> None:
    """Timeout in q-callcenter (Leave, no Abandon/Connect), then Queue(q-support)."""
    c = out.center
    login(c, "1001", T0)
    at(out, T0 + 5)
    c.handle_event(ev("UserEvent", T0 + 5, UserEvent="CALLER", Uniqueid="8.1", CallerIDNum="5558.1"))
    c.handle_event(join("8.1", T0 + 6))
    c.handle_event(leave("8.1", T0 + 21))  # timeout=15
    c.handle_event(join("8.1", T0 + 21, queue=S))
    at(out, T0 + 30)
    stats = c.stats()
    assert stats["queues"][Q]["calls_waiting"] == 0 and stats["queues"][Q]["longest_wait"] == 0
    assert stats["queues"][S]["calls_waiting"] == 1 and stats["queues"][S]["longest_wait"] == 9
    assert (stats["calls_waiting"], stats["longest_wait"]) == (1, 9)
    # Each queue counts the entry, as app_queue does; neither answered nor abandoned in Q.
    assert stats["queues"][Q]["calls_received"] == stats["queues"][S]["calls_received"] == 1
    per_queue_sums_match(stats)
    c.handle_event(ev("UserEvent", T0 + 32, UserEvent="CALLERHANGUP", Uniqueid="8.1"))
    c.handle_event(caller("QueueCallerAbandon", "8.1", T0 + 32, Queue=S, HoldTime="11"))
    stats = c.stats()
    assert stats["calls_waiting"] == 0 and stats["longest_wait"] == 0
    assert stats["queues"][S]["calls_abandoned"] == 1 and stats["queues"][Q]["calls_abandoned"] == 0
    assert rows(out, "8.1") == [("NA", 1, Q), ("QUEUED", 15, Q), ("QUEUED", 11, S)]


def test_overflow_then_answered_leaves_no_ghost_waiting(out: traces.Outcome) -> None:
    c = out.center
    login(c, "1001", T0)
    c.handle_event(member("QueueMemberAdded", "1001", T0 + 1, Queue=S))
    c.handle_event(join("8.2", T0 + 5))
    c.handle_event(leave("8.2", T0 + 20))
    c.handle_event(join("8.2", T0 + 20, queue=S))
    c.handle_event(leave("8.2", T0 + 23, queue=S))
    c.handle_event(connect("8.2", "1001", T0 + 23, hold=3, queue=S))
    at(out, T0 + 100)
    stats = c.stats()
    assert (stats["calls_waiting"], stats["longest_wait"]) == (0, 0)
    assert stats["queues"][S]["connections_online"] == 1 and c.agents["1001"].queue == S
    c.handle_event(complete("8.2", "1001", T0 + 100, hold=3, talk=77, queue=S))
    assert rows(out, "8.2") == [("QUEUED", 15, Q), ("QUEUED", 3, S), ("INCALL", 77, S)]
    assert c.stats()["queues"][S]["average_handle_time"] == 77


def test_timed_out_caller_is_no_longer_waiting(out: traces.Outcome) -> None:
    """After QueueCallerLeave with no connect the caller is out of the queue
    (voicemail, IVR): not waiting, and not an abandon when it hangs up."""
    c = out.center
    c.handle_event(ev("UserEvent", T0, UserEvent="CALLER", Uniqueid="8.3", CallerIDNum="5558.3"))
    c.handle_event(join("8.3", T0))
    c.handle_event(leave("8.3", T0 + 15))
    at(out, T0 + 60)
    stats = c.stats()
    assert (stats["calls_waiting"], stats["longest_wait"]) == (0, 0)
    assert stats["queues"][Q]["calls_waiting"] == 0
    c.handle_event(ev("UserEvent", T0 + 60, UserEvent="CALLERHANGUP", Uniqueid="8.3"))
    stats = c.stats()
    assert (stats["calls_received"], stats["calls_abandoned"], stats["calls_online"]) == (1, 0, 0)


def test_timeout_and_retry_in_the_same_queue_is_a_new_entry(out: traces.Outcome) -> None:
    """A dialplan loop: Queue(q,,,,15) times out, a message plays, Queue(q) again."""
    c = out.center
    c.handle_event(join("8.17", T0))
    c.handle_event(leave("8.17", T0 + 15))
    c.handle_event(join("8.17", T0 + 25))
    c.handle_event(join("8.17", T0 + 25))  # a duplicate of it
    at(out, T0 + 30)
    stats = c.stats()
    assert (stats["calls_received"], stats["calls_waiting"], stats["longest_wait"]) == (2, 1, 5)
    c.handle_event(caller("QueueCallerAbandon", "8.17", T0 + 31, Queue=Q, HoldTime="6"))
    # A timeout publishes the same QueueCallerAbandon (REFERENCE.md gotcha 20): what
    # makes it an abandon is the caller's hang-up, here the hangup handler's
    # CALLERHANGUP right after it (gotcha 22's order).
    c.handle_event(ev("UserEvent", T0 + 31, UserEvent="CALLERHANGUP", Uniqueid="8.17"))
    stats = c.stats()
    assert (stats["calls_abandoned"], stats["average_abandoned_time"], stats["calls_waiting"]) == (1, 6, 0)
    assert rows(out, "8.17") == [("QUEUED", 25, Q), ("QUEUED", 6, Q)]


def test_reconcile_does_not_count_a_timed_out_caller_as_abandoned(out: traces.Outcome) -> None:
    c = out.center
    ami = FakeAMI()
    c.attach(ami)
    c.handle_event(join("8.4", T0))
    c.handle_event(leave("8.4", T0 + 15))
    at(out, T0 + 30)
    # Still alive in the dialplan (voicemail), not in any queue, not bridged.
    ami.answers["CoreShowChannels"] = [Message([
        ("Event", "CoreShowChannel"), ("Channel", "Local/113@public-00008.4;2"), ("Uniqueid", "8.4"),
        ("Application", "VoiceMail"), ("Duration", "00:00:30"), ("BridgeId", ""),
    ])]
    ami.answers["QueueStatus"] = []
    for hook in ami.hooks:
        hook()
    assert c.stats()["calls_abandoned"] == 0
    ami.answers["CoreShowChannels"] = []  # it hung up while we were away
    for hook in ami.hooks:
        hook()
    stats = c.stats()
    assert (stats["calls_received"], stats["calls_abandoned"], stats["calls_online"]) == (1, 0, 0)


def test_reconcile_sees_an_overflow_it_missed(out: traces.Outcome) -> None:
    c = out.center
    ami = FakeAMI()
    c.attach(ami)
    c.handle_event(join("8.5", T0))
    at(out, T0 + 40)
    ami.answers["CoreShowChannels"] = []
    ami.answers["QueueStatus"] = [Message([
        ("Event", "QueueEntry"), ("Queue", S), ("Position", "1"), ("Channel", "Local/113@public-00008.5;2"),
        ("Uniqueid", "8.5"), ("CallerIDNum", "5558.5"), ("Wait", "20"), ("Priority", "0"),
    ])]
    for hook in ami.hooks:
        hook()
    stats = c.stats()
    assert stats["queues"][Q]["calls_waiting"] == 0
    assert (stats["queues"][S]["calls_waiting"], stats["queues"][S]["longest_wait"]) == (1, 20)
    assert stats["queues"][S]["calls_received"] == 1
    per_queue_sums_match(stats)


def test_transfer_to_another_queue_is_a_new_queue_entry(out: traces.Outcome) -> None:
    """Blind transfer: AgentComplete Reason transfer, then the same caller
    channel (same Uniqueid) runs Queue(q-support)."""
    c = out.center
    login(c, "1001", T0)
    c.handle_event(member("QueueMemberAdded", "1002", T0, Queue=S))
    c.handle_event(member("QueueMemberPause", "1002", T0 + 1, Queue=S))
    msgs = answered_call("8.6", "1001", T0 + 5, hold=2, talk=10)
    msgs[-1] = complete("8.6", "1001", T0 + 17, hold=2, talk=10, reason="transfer")
    for m in msgs:
        c.handle_event(m)
    c.handle_event(join("8.6", T0 + 18, queue=S))
    assert c.calls["8.6"].status == "QUEUED" and c.calls["8.6"].queue == S
    c.handle_event(leave("8.6", T0 + 22, queue=S))
    c.handle_event(connect("8.6", "1002", T0 + 22, hold=4, queue=S))
    c.handle_event(complete("8.6", "1002", T0 + 52, hold=4, talk=30, queue=S, reason="transfer"))
    stats = c.stats()
    assert stats["queues"][S]["calls_received"] == stats["queues"][S]["calls_answered"] == 1
    assert stats["queues"][S]["average_handle_time"] == 30
    assert c.agents["1002"].calls_taken == 1
    assert [r for r in rows(out, "8.6") if r[2] == S] == [("QUEUED", 4, S), ("INCALL", 30, S)]
    # Transferred again, back to q-callcenter: a caller we only see in a
    # QueueStatus answer (the join was missed) is adopted too.
    ami = FakeAMI()
    c.attach(ami)
    ami.answers["QueueStatus"] = [Message([
        ("Event", "QueueEntry"), ("Queue", Q), ("Position", "1"), ("Channel", "Local/113@public-00008.6;2"),
        ("Uniqueid", "8.6"), ("CallerIDNum", "5558.6"), ("Wait", "3"), ("Priority", "0"),
    ])]
    for hook in ami.hooks:
        hook()
    assert c.calls["8.6"].status == "QUEUED" and c.stats()["queues"][Q]["calls_waiting"] == 1
    c.handle_event(caller("QueueCallerAbandon", "8.6", T0 + 70, Queue=Q, HoldTime="7"))
    c.handle_event(ev("UserEvent", T0 + 70, UserEvent="CALLERHANGUP", Uniqueid="8.6"))  # gotcha 20
    # A late duplicate of the first AgentConnect still counts nothing.
    c.handle_event(msgs[3])
    assert c.stats()["calls_answered"] == 2 and c.stats()["calls_abandoned"] == 1 and not c.calls


def test_duplicate_agent_connect_after_complete_counts_once(out: traces.Outcome) -> None:
    c = out.center
    login(c, "1001", T0)
    msgs = answered_call("8.7", "1001", T0 + 5, hold=2, talk=5)
    for m in msgs:
        c.handle_event(m)
    before = (c.stats(), len(out.lines))
    c.handle_event(msgs[3])
    c.handle_event(msgs[1])
    assert (c.stats(), len(out.lines)) == before and not c.connections


def test_agent_removed_mid_call_then_complete_without_channel_fields(out: traces.Outcome) -> None:
    """QueueMemberRemoved while INCALL (022 from another phone, a supervisor's
    QueueRemove); Asterisk's AgentComplete, with no caller fields, still ends it."""
    c = out.center
    login(c, "1001", T0)
    msgs = answered_call("8.8", "1001", T0 + 5, hold=2, talk=20)
    for m in msgs[:-1]:
        c.handle_event(m)
    c.handle_event(member("QueueMemberRemoved", "1001", T0 + 10))
    assert "1001" not in c.agents and c.stats()["connections_online"] == 1
    c.handle_event(ev(
        "AgentComplete", T0 + 27, Queue=Q, Interface="Local/1001@agent-connect",
        MemberName="1001", HoldTime="2", TalkTime="20", Reason="transfer",
    ))
    stats = c.stats()
    assert (stats["connections_online"], stats["calls_online"], stats["average_handle_time"]) == (0, 0, 20)
    assert ("INCALL", 20, Q) in rows(out, "8.8")


def test_reconcile_keeps_the_call_of_an_agent_removed_mid_call(out: traces.Outcome) -> None:
    c = out.center
    ami = FakeAMI()
    c.attach(ami)
    login(c, "1001", T0)
    msgs = answered_call("8.18", "1001", T0 + 5, hold=2, talk=40)
    for m in msgs[:-1]:
        c.handle_event(m)
    c.handle_event(member("QueueMemberRemoved", "1001", T0 + 10))
    at(out, T0 + 20)
    # The caller is still bridged with the agent's leg: the conversation goes on.
    ami.answers["CoreShowChannels"] = [
        Message([("Event", "CoreShowChannel"), ("Channel", chan), ("Uniqueid", uid), ("Application", app),
                 ("ApplicationData", data), ("Duration", "00:00:15"), ("BridgeId", "b1")])
        for chan, uid, app, data in (
            ("Local/113@public-00008.18;2", "8.18", "Queue", Q),
            ("Local/1001@agent-connect-00000009;1", "9.9", "AppQueue", "(Outgoing Line)"),
        )
    ]
    ami.answers["QueueStatus"] = []
    for hook in ami.hooks:
        hook()
    assert "8.18" in c.connections and c.stats()["average_handle_time"] == 0
    c.handle_event(msgs[-1])  # Asterisk's AgentComplete, with the real talk time
    assert c.stats()["average_handle_time"] == 40 and not c.connections


def test_member_name_differs_from_interface(out: traces.Outcome) -> None:
    c = out.center
    iface = "PJSIP/1001"

    def m(name: str, t: float, **kw: str) -> Message:
        return ev(name, t, Queue=Q, MemberName="Alice", Interface=iface, Status="1", **kw)

    c.handle_event(m("QueueMemberAdded", T0, Paused="0"))
    c.handle_event(m("QueueMemberPause", T0, Paused="1", PausedReason=""))
    c.handle_event(ev("UserEvent", T0 + 1, UserEvent="LOGGEDIN", agentid="1001", member=iface))
    c.handle_event(m("QueueMemberPause", T0 + 2, Paused="0", PausedReason=""))
    assert list(c.agents) == ["Alice"] and c.agents["Alice"].status == "AVAIL"
    c.handle_event(join("8.9", T0 + 3))
    c.handle_event(caller("AgentConnect", "8.9", T0 + 5, Queue=Q, MemberName="Alice", Interface=iface, HoldTime="2"))
    assert c.agents["Alice"].status == "INCALL"
    c.handle_event(ev("AgentComplete", T0 + 9, Queue=Q, MemberName="Alice", Interface=iface, TalkTime="4", HoldTime="2"))
    assert c.agents["Alice"].status == "AVAIL" and c.agents["Alice"].calls_taken == 1
    c.handle_event(ev("UserEvent", T0 + 10, UserEvent="LOGGEDOUT", agentid="1001", member=iface))
    assert not c.agents


def test_agent_in_two_queues_paused_in_one_during_a_call_from_the_other(out: traces.Outcome) -> None:
    c = out.center
    for q in (Q, S):
        c.handle_event(member("QueueMemberAdded", "1001", T0, Queue=q))
    for uid, q, t in (("8.10", Q, T0 + 5), ("8.11", S, T0 + 20)):
        c.handle_event(join(uid, t, queue=q))
        c.handle_event(connect(uid, "1001", t + 1, hold=1, queue=q))
        if q == Q:
            c.handle_event(member("QueueMemberPause", "1001", t + 2, paused="1", reason="break", Queue=S))
        assert c.agents["1001"].status == "INCALL" and c.agents["1001"].queue == q
        assert c.stats()["queues"][q]["connections_online"] == 1
        c.handle_event(complete(uid, "1001", t + 6, hold=1, talk=5, queue=q))
        if q == Q:
            assert c.agents["1001"].status == "AVAIL"  # still available in q-callcenter
            c.handle_event(member("QueueMemberPause", "1001", t + 7, paused="0", Queue=S))
    stats = c.stats()
    assert stats["queues"][Q]["calls_answered"] == stats["queues"][S]["calls_answered"] == 1
    assert c.agents["1001"].calls_taken == 2
    per_queue_sums_match(stats)
    agent_rows = [line.split(";")[3:6] for line in out.lines if ";AGENT;" in line]
    assert ["INCALL", "5", Q] in agent_rows and ["INCALL", "5", S] in agent_rows


def test_reconcile_keeps_a_paused_agents_call(out: traces.Outcome) -> None:
    c = out.center
    ami = FakeAMI()
    c.attach(ami)
    login(c, "1001", T0)
    for m in answered_call("8.12", "1001", T0 + 5, hold=2, talk=30)[:-1]:
        c.handle_event(m)
    c.handle_event(member("QueueMemberPause", "1001", T0 + 9, paused="1", reason="after call work"))
    at(out, T0 + 20)
    lines = len(out.lines)
    ami.answers["QueueStatus"] = [queue_member("1001", paused="1", reason="after call work", in_call="1")]
    ami.answers["CoreShowChannels"] = []
    for hook in ami.hooks:
        hook()
    assert c.agents["1001"].status == "INCALL" and "8.12" in c.connections
    assert len(out.lines) == lines and c.stats()["calls_answered"] == 1


def test_hangup_before_queue_caller_abandon_counts_once(out: traces.Outcome) -> None:
    """A SIP caller (FreePBX-style): its Hangup may overtake QueueCallerAbandon."""
    c = out.center
    c.handle_event(join("8.13", T0))
    c.handle_event(caller("Hangup", "8.13", T0 + 7, Cause="16"))
    c.handle_event(caller("QueueCallerAbandon", "8.13", T0 + 7, Queue=Q, HoldTime="7"))
    c.handle_event(leave("8.13", T0 + 7))
    stats = c.stats()
    assert (stats["calls_abandoned"], stats["average_abandoned_time"], stats["calls_waiting"]) == (1, 7, 0)
    assert rows(out, "8.13") == [("QUEUED", 7, Q)]


def test_na_line_ends_when_the_call_entered_the_queue(out: traces.Outcome) -> None:
    """The QueueCallerJoin was missed: the entry is inferred from HoldTime, and
    the IVR (NA) line must not also cover the time spent queued."""
    c = out.center
    login(c, "1001", T0)
    c.handle_event(ev("UserEvent", T0 + 2, UserEvent="CALLER", Uniqueid="8.14", CallerIDNum="5558.14"))
    c.handle_event(connect("8.14", "1001", T0 + 10, hold=6))
    assert rows(out, "8.14") == [("NA", 2, Q), ("QUEUED", 6, Q)]
    began = [line.split(";")[0] for line in out.lines if "8.14" in line]
    assert began == ["2026-11-26 03:50:02", "2026-11-26 03:50:04"]


def test_rollover_with_calls_in_progress() -> None:
    from datetime import datetime

    from callcenter.center import Callcenter
    from callcenter.kpi import BusinessDay

    boundary = datetime(2026, 11, 27, tzinfo=traces.UTC).timestamp()
    out = traces.new_center(boundary - 100)
    c = out.center = Callcenter(out.clock, business_day=BusinessDay((0, 0), traces.UTC))
    c.subscribe(out.record)
    c.start()
    login(c, "1001", boundary - 100)
    for m in answered_call("8.15", "1001", boundary - 50, hold=5, talk=100)[:-1]:
        c.handle_event(m)  # connected before midnight
    c.handle_event(join("8.16", boundary - 10))  # waiting at midnight
    at(out, boundary + 5)
    stats = c.stats()
    assert (stats["calls_received"], stats["connections_online"], stats["calls_waiting"]) == (0, 1, 1)
    assert stats["longest_wait"] == 15
    c.handle_event(caller("QueueCallerAbandon", "8.16", boundary + 20, Queue=Q, HoldTime="30"))
    c.handle_event(ev("UserEvent", boundary + 20, UserEvent="CALLERHANGUP", Uniqueid="8.16"))  # gotcha 20
    c.handle_event(answered_call("8.15", "1001", boundary - 50, hold=5, talk=100)[-1])
    day1 = c.past[min(c.past)].total()
    assert (day1.received, day1.answered, day1.abandoned, day1.completed) == (2, 1, 1, 1)
    assert c.book.total() == type(day1)()
    assert (c.stats()["calls_waiting"], c.stats()["connections_online"]) == (0, 0)
    c.stop()


def _call_class(name: str, uid: str, t: float) -> Message:
    """An event of class "call" on the caller's channel (only its header matters)."""
    return Message([("Event", name), ("Privilege", "call,all"), ("Timestamp", f"{t:.6f}"),
                    ("Channel", f"Local/115@public-0000{uid};2"), ("Uniqueid", uid)])


@pytest.mark.parametrize("then", ["next queue", "message, hang-up"])
def test_a_just_started_session_does_not_take_its_first_timeout_for_an_abandon(
    out: traces.Outcome, then: str
) -> None:
    """REFERENCE.md gotcha 20, overflow-small's 5550002 and 5550005: the first thing
    a process just started hears is a queue timeout's QueueCallerAbandon, before
    any HangupRequest.  What follows on a session that reads class "call"
    (MusicOnHoldStop at once, no hang-up) makes it a timeout; the caller's entry
    into q-support counts there."""
    c = out.center
    c.handle_event(join("8.20", T0))
    c.handle_event(caller("QueueCallerAbandon", "8.20", T0 + 8, Queue=Q, HoldTime="8"))
    c.handle_event(_call_class("MusicOnHoldStop", "8.20", T0 + 8))
    c.handle_event(leave("8.20", T0 + 8))
    if then == "next queue":
        c.handle_event(join("8.20", T0 + 8, queue=S))
    else:
        at(out, T0 + 10)  # Playback of a 2 s message, then Hangup
        c.handle_event(ev("UserEvent", T0 + 10, UserEvent="CALLERHANGUP", Uniqueid="8.20"))
    stats = c.stats()
    assert (stats["queues"][Q]["calls_abandoned"], stats["queues"][Q]["calls_timeout"]) == (0, 1)
    assert stats["queues"].get(S, {}).get("calls_received", 0) == (1 if then == "next queue" else 0)
    assert rows(out, "8.20")[0] == ("QUEUED", 8, Q)


@pytest.mark.parametrize("then", ["nothing", "next queue", "its hang-up"])
def test_without_class_call_an_unexplained_abandon_is_counted_abandoned(
    out: traces.Outcome, then: str
) -> None:
    """A session that reads only "agent" (and "user") events never shows a
    hang-up: a QueueCallerAbandon is an abandon unless the caller then joins a
    queue (a hung-up channel runs no Queue()) — decided within the window."""
    c = out.center
    c.handle_event(join("8.21", T0))
    c.handle_event(caller("QueueCallerAbandon", "8.21", T0 + 5, Queue=Q, HoldTime="5"))
    c.handle_event(leave("8.21", T0 + 5))
    if then == "next queue":
        c.handle_event(join("8.21", T0 + 5, queue=S))
    elif then == "its hang-up":  # the shipped dialplan's hangup handler (gotcha 22)
        c.handle_event(ev("UserEvent", T0 + 5, UserEvent="CALLERHANGUP", Uniqueid="8.21"))
    at(out, T0 + 7)
    stats = c.stats()["queues"][Q]
    assert (stats["calls_abandoned"], stats["calls_timeout"]) == ((0, 1) if then == "next queue" else (1, 0))
