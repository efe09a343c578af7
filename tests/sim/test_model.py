"""The simulated call center's behaviour, observed over AMI as a CTI sees it."""

from __future__ import annotations

import re

import pytest

from callcenter.simulator.clock import run_for

from .tracekit import Session, login, make_pbx


@pytest.fixture
def pbx_session():
    pbx, clock = make_pbx()
    s = Session(pbx)
    login(s)
    s.read()
    return pbx, clock, s


def agent_login(s, clock, agent: str, unpause: bool = True) -> None:
    s.action("Originate", Channel="Local/011@public", CallerID=f'"Agent {agent}" <{agent}>',
             Application="Wait", Data="1", Async="true")
    run_for(clock, 1)
    if unpause:
        s.action("QueuePause", Interface=f"Local/{agent}@agent-connect", Paused="false")


def call(s, cid: str, patience: int = 60, talk: int = 5, channel: str = "Local/113@public"):
    s.action("Originate", Channel=channel, CallerID=f'"Caller" <{cid}>', Application="Wait",
             Data=str(patience), Variable=f"__TALK={talk}", Async="true")


def events(msgs, *names):
    return [m for m in msgs if m.kind == "Event" and (not names or m.name in names)]


def test_login_adds_then_pauses_in_every_queue_of_the_agent(pbx_session):
    pbx, clock, s = pbx_session
    pbx.model.agent_queues["1001"] = ["q-callcenter", "q-support"]
    agent_login(s, clock, "1001", unpause=False)
    ev = events(s.read(), "QueueMemberAdded", "QueueMemberPause", "UserEvent")
    assert [(m.name, m.get("Queue"), m.get("Paused")) for m in ev] == [
        ("QueueMemberAdded", "q-callcenter", "0"), ("QueueMemberAdded", "q-support", "0"),
        ("QueueMemberPause", "q-callcenter", "1"), ("QueueMemberPause", "q-support", "1"),
        ("UserEvent", None, None)]
    ue = ev[-1]
    assert (ue["UserEvent"], ue["agentid"], ue["member"]) == (
        "LOGGEDIN", "1001", "Local/1001@agent-connect")
    assert re.fullmatch(r"Local/011@public-[0-9a-f]{8};2", ue["Channel"])
    assert (ue["CallerIDNum"], ue["Context"]) == ("1001", "agent-login")
    added = ev[0]
    assert (added["MemberName"], added["Interface"], added["Membership"]) == (
        "1001", "Local/1001@agent-connect", "dynamic")
    # Logging in again leaves the membership alone and pauses again.
    agent_login(s, clock, "1001", unpause=False)
    assert [m.name for m in events(s.read(), "QueueMemberAdded", "QueueMemberPause")] == [
        "QueueMemberPause", "QueueMemberPause"]


def test_pause_all_queues_or_one_and_logout(pbx_session):
    pbx, clock, s = pbx_session
    pbx.model.agent_queues["1002"] = ["q-callcenter", "q-support"]
    agent_login(s, clock, "1002", unpause=False)
    s.read()
    s.action("QueuePause", Interface="Local/1002@agent-connect", Paused="false", Reason="back")
    ev = events(s.read(), "QueueMemberPause")
    assert [(m["Queue"], m["Paused"], m["PausedReason"]) for m in ev] == [
        ("q-callcenter", "0", "back"), ("q-support", "0", "back")]
    s.action("QueuePause", Interface="Local/1002@agent-connect", Queue="q-support",
             Paused="true", Reason="lunch")
    ev = events(s.read(), "QueueMemberPause")
    assert [(m["Queue"], m["Paused"], m["PausedReason"]) for m in ev] == [
        ("q-support", "1", "lunch")]
    assert ev[0]["LastPause"] == str(int(clock.seconds()))
    s.action("Originate", Channel="Local/022@public", CallerID="<1002>", Application="Wait",
             Data="1", Async="true")
    run_for(clock, 1)
    ev = events(s.read(), "QueueMemberRemoved", "UserEvent")
    assert [(m.name, m.get("Queue") or m["UserEvent"]) for m in ev] == [
        ("QueueMemberRemoved", "q-callcenter"), ("QueueMemberRemoved", "q-support"),
        ("UserEvent", "LOGGEDOUT")]
    assert not pbx.model.queues["q-callcenter"].members


def test_answered_call_ids_and_counters(pbx_session):
    pbx, clock, s = pbx_session
    agent_login(s, clock, "1001")
    s.read()
    call(s, "5550001", talk=5)
    run_for(clock, 30)
    msgs = s.read()
    names = [m.name for m in events(msgs, "QueueCallerJoin", "AgentCalled", "QueueCallerLeave",
                                    "AgentConnect", "AgentComplete")]
    assert names == ["QueueCallerJoin", "AgentCalled", "QueueCallerLeave", "AgentConnect",
                     "AgentComplete"]
    join = events(msgs, "QueueCallerJoin")[0]
    ch1 = events(msgs, "Newchannel")[0]
    assert re.fullmatch(r"Local/113@public-([0-9a-f]{8});2", join["Channel"])
    assert join["Linkedid"] == ch1["Uniqueid"] != join["Uniqueid"]
    connect = events(msgs, "AgentConnect")[0]
    suffix = int(join["Channel"][-10:-2], 16)
    assert connect["DestChannel"] == f"Local/1001@agent-connect-{suffix + 1:08x};1"
    assert connect["DestLinkedid"] == join["Linkedid"]
    assert connect["DestCallerIDNum"] == "5550001"  # the caller's number (gotcha 2)
    assert (connect["Interface"], connect["MemberName"]) == ("Local/1001@agent-connect", "1001")
    assert (connect["HoldTime"], connect["RingTime"]) == ("1", "1")
    complete = events(msgs, "AgentComplete")[0]
    assert (complete["TalkTime"], complete["Reason"]) == ("5", "agent")
    assert "DestChannel" in complete
    hangups = [m["UserEvent"] for m in events(msgs, "UserEvent")]
    assert hangups == ["CALLER", "CALLERHANGUP"]
    # The hangup handler unpauses the member after the call (gotcha 4).
    after = msgs[msgs.index(complete):]
    assert [m["Paused"] for m in events(after, "QueueMemberPause")] == ["0"]
    t = pbx.truth()["q-callcenter"]
    assert (t["offered"], t["answered"], t["completed"], t["abandoned"]) == (1, 1, 1, 0)
    assert t["hold_answered"] == pytest.approx(1.0)
    assert t["talk_completed"] == pytest.approx(5.0)
    s.action("QueueStatus", Queue="q-callcenter", ActionID="q")
    status = {m.name: m for m in s.read()}
    assert (status["QueueParams"]["Completed"], status["QueueParams"]["Holdtime"],
            status["QueueParams"]["TalkTime"], status["QueueParams"]["ServicelevelPerf"]) == (
        "1", "1", "5", "100.0")
    assert (status["QueueMember"]["CallsTaken"], status["QueueMember"]["InCall"]) == ("1", "0")
    assert pbx.model.channels == {}


def test_caller_hangs_up_while_talking(pbx_session):
    pbx, clock, s = pbx_session
    agent_login(s, clock, "1001")
    s.read()
    call(s, "5550001", patience=6, talk=30)
    run_for(clock, 40)
    msgs = s.read()
    complete = events(msgs, "AgentComplete")[0]
    assert complete["Reason"] == "caller"
    assert "DestChannel" not in complete and complete["Channel"].startswith("Local/113@public")
    connect = events(msgs, "AgentConnect")[0]
    # Whole seconds as Asterisk counts them: time(NULL) at the end minus at the start.
    assert complete["TalkTime"] == str(int(float(complete["Timestamp"]))
                                       - int(float(connect["Timestamp"])))
    assert float(complete["Timestamp"]) - float(connect["Timestamp"]) == pytest.approx(4.5)
    ch1_hangup = next(m for m in events(msgs, "Hangup") if m["Channel"].endswith(";1")
                      and "113@public" in m["Channel"])
    assert (ch1_hangup["Cause"], ch1_hangup["Cause-txt"]) == ("0", "Unknown")
    t = pbx.truth()["q-callcenter"]
    assert (t["completed"], t["completed_by_caller"]) == (1, 1)


def test_abandon_while_waiting(pbx_session):
    pbx, clock, s = pbx_session
    agent_login(s, clock, "1001", unpause=False)
    call(s, "5550001", patience=3)
    call(s, "5550002", patience=3)
    run_for(clock, 10)
    msgs = s.read()
    ab = events(msgs, "QueueCallerAbandon")
    assert [(m["Position"], m["OriginalPosition"]) for m in ab] == [("1", "1"), ("1", "2")]
    joins = events(msgs, "QueueCallerJoin")
    for j, a in zip(joins, ab, strict=True):
        assert a["HoldTime"] == str(int(float(a["Timestamp"])) - int(float(j["Timestamp"])))
    leave = events(msgs, "QueueCallerLeave")
    assert [m["Count"] for m in leave] == ["1", "0"]
    i = msgs.index(ab[0])
    assert msgs[i + 1].name == "QueueCallerLeave"
    assert not events(msgs, "AgentCalled")
    t = pbx.truth()["q-callcenter"]
    assert (t["offered"], t["abandoned"], t["answered"], t["abandoned_in_sl"]) == (2, 2, 0, 2)
    assert t["hold_abandoned"] == pytest.approx(5.0)


def test_ring_no_answer_then_next_member(pbx_session):
    pbx, clock, s = pbx_session
    s.action("Setvar", Variable="NOANSWER_1001", Value="1")
    agent_login(s, clock, "1001")
    agent_login(s, clock, "1002")
    s.read()
    call(s, "5550001")
    run_for(clock, 0.6)
    first = events(s.read(), "AgentCalled")
    assert [m["MemberName"] for m in first] == ["1001"]
    run_for(clock, 15)
    rna = events(s.read(), "AgentRingNoAnswer", "DialEnd", "AgentCalled")
    assert [(m.name, m.get("DialStatus")) for m in rna] == [
        ("AgentRingNoAnswer", None), ("DialEnd", "NOANSWER"), ("DialEnd", "CANCEL")]
    assert rna[0]["RingTime"] == "15000"
    run_for(clock, 2.1)  # the queue's retry
    assert [m["MemberName"] for m in events(s.read(), "AgentCalled")] == ["1002"]
    assert pbx.truth()["q-callcenter"]["ring_no_answer"] == 1


def test_abandon_while_ringing_cancels_the_dial(pbx_session):
    pbx, clock, s = pbx_session
    s.action("Setvar", Variable="NOANSWER_1001", Value="1")
    agent_login(s, clock, "1001")
    s.read()
    call(s, "5550001", patience=5)
    run_for(clock, 10)
    msgs = s.read()
    assert not events(msgs, "AgentRingNoAnswer")
    assert [m["DialStatus"] for m in events(msgs, "DialEnd") if "Channel" in m] == [
        "CANCEL", "CANCEL"]
    assert [m["Status"] for m in events(msgs, "QueueMemberStatus")] == ["2", "1"]
    assert events(msgs, "QueueCallerAbandon")


def test_pause_during_call_is_undone_by_the_hangup_handler(pbx_session):
    pbx, clock, s = pbx_session
    agent_login(s, clock, "1001")
    call(s, "5550001", talk=10)
    run_for(clock, 4)
    s.read()
    s.action("QueuePause", Interface="Local/1001@agent-connect", Paused="true",
             Reason="after call work")
    pause = events(s.read(), "QueueMemberPause")[0]
    assert (pause["InCall"], pause["Status"], pause["Paused"]) == ("1", "2", "1")
    run_for(clock, 15)
    msgs = s.read()
    status = events(msgs, "QueueMemberStatus")[0]
    assert (status["Status"], status["Paused"], status["PausedReason"]) == (
        "1", "1", "after call work")
    assert [m["Paused"] for m in events(msgs, "QueueMemberPause")] == ["0"]


def test_wrapup_and_round_robin(pbx_session):
    pbx, clock, s = pbx_session
    for agent in ("1001", "1002", "1003"):
        agent_login(s, clock, agent)
    s.read()
    called = []
    for i in range(6):
        call(s, f"555000{i}", talk=3)
        run_for(clock, 8)
        called += [m["MemberName"] for m in events(s.read(), "AgentCalled")]
    assert called == ["1001", "1002", "1003", "1001", "1002", "1003"]
    # Back to back: the agent that just finished waits out the 2 s wrap-up.
    call(s, "5551000", talk=3)
    run_for(clock, 0.6 + 1 + 3)  # answered by 1001, who hangs up now
    call(s, "5551001", talk=3)
    call(s, "5551002", talk=3)
    run_for(clock, 0.6)
    msgs = events(s.read(), "AgentCalled", "AgentComplete")
    assert [(m.name, m["MemberName"]) for m in msgs] == [
        ("AgentCalled", "1001"), ("AgentComplete", "1001"), ("AgentCalled", "1002"),
        ("AgentCalled", "1003")]


def test_plain_queue_entry_and_agent_in_two_queues(pbx_session):
    pbx, clock, s = pbx_session
    pbx.model.agent_queues["1001"] = ["q-callcenter", "q-support"]
    agent_login(s, clock, "1001")
    s.read()
    call(s, "5550009", channel="Local/q-support@queues", talk=3)
    run_for(clock, 10)
    msgs = s.read()
    assert not events(msgs, "UserEvent", "HangupHandlerPush", "HangupHandlerRun")
    join = events(msgs, "QueueCallerJoin")[0]
    assert (join["Queue"], join["Context"]) == ("q-support", "queues")
    # One QueueMemberStatus per queue for each device state change (gotcha 18).
    assert [(m["Queue"], m["Status"]) for m in events(msgs, "QueueMemberStatus")] == [
        ("q-callcenter", "2"), ("q-support", "2"), ("q-callcenter", "1"), ("q-support", "1")]
    assert pbx.truth()["q-support"]["completed"] == 1


def test_timestamps_option_and_legacy_pause_name():
    pbx, clock = make_pbx(timestampevents=False, legacy_pause_name=True)
    s = Session(pbx)
    login(s)
    agent_login(s, clock, "1001")
    msgs = s.read()
    assert msgs and not any("Timestamp" in m for m in msgs)
    assert "QueueMemberPaused" in [m.name for m in msgs]
    assert "QueueMemberPause" not in [m.name for m in msgs]


def test_same_seed_same_transcript():
    def transcript(seed: int) -> bytes:
        pbx, clock = make_pbx(agents=8, calls_per_minute=6.0, seed=seed)
        s = Session(pbx)
        login(s)
        pbx.start()
        run_for(clock, 900)
        return s.transport.value()

    a, b, c = transcript(7), transcript(7), transcript(8)
    assert a == b
    assert a != c
    assert a.count(b"Event: AgentConnect") > 10


def test_lively_first_minute():
    """The default traffic: agents log in, calls queue, are answered and abandoned."""
    pbx, clock = make_pbx(agents=8, calls_per_minute=4.0, queues=("q-callcenter", "q-support"),
                          seed=1)
    s = Session(pbx)
    login(s)
    pbx.start()
    run_for(clock, 60)
    names = [m.name for m in s.read()]
    assert names.count("QueueMemberAdded") >= 8
    assert names.count("AgentConnect") >= 3
    assert names.count("QueueCallerAbandon") >= 1
    assert any(m.startswith("QueueMemberPause") for m in names)
    truth = pbx.truth()
    assert sum(t["offered"] for t in truth.values()) >= 6


def test_traffic_names_agents_and_pauses_with_the_configured_reasons() -> None:
    """Issue 15: the simulated phones carry names, agents key in the service's reasons."""
    from twisted.internet.task import Clock

    from callcenter.simulator.model import PBXModel
    from callcenter.simulator.traffic import Traffic

    model = PBXModel(Clock(), ["q-callcenter"])
    traffic = Traffic(model, agents=30, pause_reasons=("Tea", "Nap"))
    names = [traffic.names[a] for a in traffic.agent_ids]
    assert len(set(names)) == 30 and all(" " in n for n in names)
    assert {r.casefold() for r in traffic.pause_reasons} == {"tea", "nap", ""}
    assert traffic._callerid("1001") == f'"{traffic.names["1001"]}" <1001>'
