"""The simulator's AMI server: sessions, login, and Asterisk's answers to bad input."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.ami.message import format_action
from callcenter.simulator.clock import run_for

from .tracekit import Session, login, make_pbx

UNKNOWN = "Invalid/unknown command: Frobnicate. Use Action: ListCommands to show available commands."


def logged_in(**kw):
    pbx, clock = make_pbx(**kw)
    s = Session(pbx)
    assert login(s)["Message"] == "Authentication accepted"
    s.read()
    return pbx, clock, s


def reply(s: Session, name: str, **headers: str):
    s.action(name, **headers)
    return s.read()


def test_banner_is_one_line():
    pbx, _clock = make_pbx()
    s = Session(pbx)
    assert s.transport.value() == b"Asterisk Call Manager/11.0.0\r\n"


def test_login_then_fully_booted_then_successful_auth():
    pbx, _clock = make_pbx()
    s = Session(pbx)
    s.action("Login", ActionID="x1", Username="ADMIN", Secret="password")
    msgs = s.read()
    assert [m.name for m in msgs] == ["Success", "FullyBooted", "SuccessfulAuth"]
    assert msgs[0].headers == [("Response", "Success"), ("ActionID", "x1"),
                               ("Message", "Authentication accepted")]
    assert "Timestamp" not in msgs[1]  # written straight to the session
    assert [k for k, _ in msgs[2].headers][:3] == ["Event", "Privilege", "Timestamp"]
    assert msgs[2]["AccountID"] == "admin" and msgs[2]["Privilege"] == "security,all"
    assert reply(s, "Login", Username="admin", Secret="password")[0]["Message"] == \
        "Already authenticated"


def test_actions_before_login_are_refused():
    pbx, _clock = make_pbx()
    s = Session(pbx)
    for name in ("Ping", "QueueStatus", "QueuePause", "Frobnicate"):
        msgs = reply(s, name, ActionID="a7")
        assert [m.headers for m in msgs] == [[("Response", "Error"), ("ActionID", "a7"),
                                              ("Message", "Permission denied")]]
    assert s.connected


def test_wrong_secret_fails_after_a_second_and_closes():
    pbx, clock = make_pbx(auth_fail_delay=1.0)
    s = Session(pbx)
    s.action("Login", ActionID="l", Username="admin", Secret="nope")
    assert s.read() == []
    s.action("Ping")  # ignored while Asterisk sleeps
    clock.advance(1.0)
    msgs = s.read()
    assert [m.headers for m in msgs] == [[("Response", "Error"), ("ActionID", "l"),
                                          ("Message", "Authentication failed")]]
    assert not s.connected


def test_unknown_user_and_missing_username_fail():
    for headers in ({"Username": "root", "Secret": "password"}, {"Secret": "password"}):
        pbx, _clock = make_pbx()
        s = Session(pbx)
        msgs = reply(s, "Login", **headers)
        assert msgs[0]["Message"] == "Authentication failed" and not s.connected


def test_md5_challenge_login():
    pbx, _clock = make_pbx()
    s = Session(pbx)
    assert reply(s, "Challenge", ActionID="c")[0]["Message"] == "Must specify AuthType"
    ch = reply(s, "Challenge", ActionID="c", AuthType="md5")[0]
    assert ch.headers[:2] == [("Response", "Success"), ("ActionID", "c")]
    key = hashlib.md5((ch["Challenge"] + "password").encode()).hexdigest()
    assert reply(s, "Login", Username="admin", AuthType="MD5", Key=key)[0]["Message"] == \
        "Authentication accepted"

    s2 = Session(pbx)
    ch = reply(s2, "Challenge", AuthType="MD5")[0]
    bad = hashlib.md5((ch["Challenge"] + "wrong").encode()).hexdigest()
    assert reply(s2, "Login", Username="admin", AuthType="MD5", Key=bad)[0]["Message"] == \
        "Authentication failed"


def test_unauthenticated_session_times_out():
    pbx, clock = make_pbx()
    s = Session(pbx)
    clock.advance(29)
    assert s.connected
    clock.advance(2)
    assert not s.connected


def test_unknown_action_answered_like_asterisk():
    _pbx, _clock, s = logged_in()
    assert [m.headers for m in reply(s, "Frobnicate", ActionID="9")] == [
        [("Response", "Error"), ("ActionID", "9"), ("Message", UNKNOWN)]]
    assert reply(s, "Ping")[0]["Ping"] == "Pong"


def test_ping_and_header_case():
    _pbx, _clock, s = logged_in()
    s.send(b"ACTION:ping\r\nactionid:   p1\r\n\r\n")
    (pong,) = s.read()
    assert [k for k, _ in pong.headers] == ["Response", "ActionID", "Ping", "Timestamp"]
    assert pong["ActionID"] == "p1" and pong["Ping"] == "Pong"


def test_garbage_and_lines_without_colon():
    _pbx, _clock, s = logged_in()
    s.send(b"hello there\r\nthis is not AMI\r\n\r\n")
    assert [m["Message"] for m in s.read()] == ["Missing action in request"]
    s.send(b"\r\n")  # Asterisk answers even a bare blank line
    assert [m["Message"] for m in s.read()] == ["Missing action in request"]
    s.send(b"Action: Ping\r\njunk line\r\nActionID: j\r\n\r\n")
    assert s.read()[0]["ActionID"] == "j"
    s.send(b"\xff\xfe\x00garbage: \xc3\x28\n\n")
    assert s.read()[0]["Message"] == "Missing action in request"
    s.send(b"Action:\r\nActionID: e\r\n\r\n")
    assert s.read()[0].headers == [("Response", "Error"), ("ActionID", "e"),
                                   ("Message", "Missing action in request")]
    assert s.connected


def test_overlong_line_and_too_many_headers():
    _pbx, _clock, s = logged_in()
    s.send(b"Action: Ping\r\nX: " + b"a" * 5000 + b"\r\n\r\n")
    assert s.read()[0]["Message"] == "Failed to parse message: line too long"
    s.send(b"Action: Ping\r\n" + b"X-Junk: 1\r\n" * 200 + b"\r\n")
    assert s.read()[0]["Message"] == "Too many lines in message or allocation failure"
    assert reply(s, "Ping")[0]["Response"] == "Success"


def test_logoff():
    _pbx, _clock, s = logged_in()
    assert reply(s, "Logoff", ActionID="z")[0].headers == [
        ("Response", "Goodbye"), ("ActionID", "z"), ("Message", "Thanks for all the fish.")]
    assert not s.connected


def test_queue_pause_errors_and_success():
    _pbx, _clock, s = logged_in()
    assert reply(s, "QueuePause", Interface="Local/9999@agent-connect", Paused="true")[0][
        "Message"] == "Interface not found"
    assert reply(s, "QueuePause", Paused="true")[0]["Message"] == \
        "Need 'Interface' and 'Paused' parameters."
    assert reply(s, "QueuePause", Interface="Local/1@agent-connect")[0]["Message"] == \
        "Need 'Interface' and 'Paused' parameters."
    s.action("Originate", Channel="Local/011@public", CallerID="<1001>", Application="Wait",
             Data="1", Async="true")
    _clock.advance(1)
    s.read()
    assert reply(s, "QueuePause", Interface="Local/1001@agent-connect", Queue="q-nope",
                 Paused="1")[0]["Message"] == "Interface not found"
    msgs = reply(s, "QueuePause", ActionID="p", Interface="local/1001@AGENT-connect",
                 Paused="yes", Reason="lunch")
    # The response comes first, then the event (Asterisk delivers events after the action).
    assert [m.name for m in msgs] == ["Success", "QueueMemberPause"]
    assert msgs[0]["Message"] == "Interface paused successfully"
    assert (msgs[1]["Paused"], msgs[1]["PausedReason"]) == ("1", "lunch")
    assert reply(s, "QueuePause", Interface="Local/1001@agent-connect", Paused="no")[0][
        "Message"] == "Interface unpaused successfully"


def test_events_mask():
    pbx, clock = make_pbx()
    quiet = Session(pbx)
    login(quiet, Events="off")
    agent_only = Session(pbx)
    login(agent_only, Events="agent")
    s = Session(pbx)
    login(s)
    for sess in (quiet, agent_only, s):
        sess.read()
    s.action("Originate", Channel="Local/011@public", CallerID="<1001>", Application="Wait",
             Data="1", Async="true")
    clock.advance(1)
    assert quiet.read() == []
    assert {m["Privilege"] for m in agent_only.read()} == {"agent,all"}
    assert {m.name for m in s.read()} >= {"Newchannel", "QueueMemberAdded", "UserEvent",
                                          "OriginateResponse"}
    assert reply(quiet, "Events", EventMask="")[0]["Message"] == "Invalid event mask"
    on = reply(quiet, "Events", ActionID="e", EventMask="on")[0]
    assert on.headers == [("Response", "Success"), ("ActionID", "e"), ("Events", "On")]
    quiet.action("QueuePause", Interface="Local/1001@agent-connect", Paused="false")
    assert [m.name for m in quiet.read()] == ["Success", "QueueMemberPause"]
    assert reply(quiet, "Events", EventMask="off")[0]["Events"] == "Off"


def test_list_responses_structure():
    pbx, clock, s = logged_in()
    s.action("Originate", Channel="Local/011@public", CallerID='"A" <1001>', Application="Wait",
             Data="1", Async="true")
    s.action("Originate", Channel="Local/113@public", CallerID='"Caller" <5550001>',
             Application="Wait", Data="60", Async="true")
    clock.advance(1)
    s.read()
    msgs = reply(s, "QueueStatus", ActionID="qs")
    assert msgs[0].headers == [("Response", "Success"), ("ActionID", "qs"),
                               ("EventList", "start"), ("Message", "Queue status will follow")]
    assert [m.name for m in msgs[1:]] == ["QueueParams", "QueueMember", "QueueEntry",
                                          "QueueParams", "QueueStatusComplete"]
    for item in msgs[1:-1]:
        assert "Privilege" not in item and "Timestamp" not in item
        assert item.headers[-1] == ("ActionID", "qs")
    assert msgs[-1].headers == [("Event", "QueueStatusComplete"), ("ActionID", "qs"),
                                ("EventList", "Complete"), ("ListItems", "4")]
    assert [m.name for m in reply(s, "QueueStatus", Queue="q-support")[1:]] == [
        "QueueParams", "QueueStatusComplete"]
    summary = reply(s, "QueueSummary", ActionID="sum", Queue="q-callcenter")
    assert [m.name for m in summary] == ["Success", "QueueSummary", "QueueSummaryComplete"]
    assert (summary[1]["LoggedIn"], summary[1]["Available"], summary[1]["Callers"]) == (
        "1", "0", "1")
    chans = reply(s, "CoreShowChannels", ActionID="c")
    assert chans[0]["Message"] == "Channels will follow"
    assert [m.name for m in chans[1:-1]] == ["CoreShowChannel"] * 2
    assert chans[1].headers[1] == ("ActionID", "c")  # first here, unlike QueueStatus
    assert chans[-1]["ListItems"] == "2"


def test_originate_errors():
    pbx, clock, s = logged_in()
    assert reply(s, "Originate")[0]["Message"] == "Channel not specified"
    assert reply(s, "Originate", Channel="nonsense")[0]["Message"] == "Invalid channel"
    assert reply(s, "Originate", Channel="Local/999@nowhere")[0]["Message"] == "Originate failed"
    msgs = reply(s, "Originate", ActionID="o", Channel="SIP/trunk/123", Async="yes",
                 Application="Wait", Data="5")
    assert [m.name for m in msgs] == ["Success", "OriginateResponse"]
    assert (msgs[1]["Response"], msgs[1]["Reason"], msgs[1]["ActionID"]) == ("Failure", "0", "o")
    assert pbx.model.channels == {}


def test_setvar_getvar_hangup():
    pbx, clock, s = logged_in()
    assert reply(s, "Setvar", Value="1")[0]["Message"] == "No variable specified"
    assert reply(s, "Setvar", Variable="X", Value="1", Channel="SIP/x")[0]["Message"] == \
        "No such channel"
    assert reply(s, "Setvar", Variable="NOANSWER_1001", Value="1")[0]["Message"] == "Variable Set"
    got = reply(s, "Getvar", Variable="NOANSWER_1001")[0]
    assert (got["Variable"], got["Value"]) == ("NOANSWER_1001", "1")
    assert reply(s, "Hangup")[0]["Message"] == "No channel specified"
    assert reply(s, "Hangup", Channel="Local/x")[0]["Message"] == "No such channel"
    assert reply(s, "Hangup", Channel="/[/")[0]["Message"] == "Regex compile failed on: /[/"
    s.action("Originate", Channel="Local/113@public", CallerID="<5550001>", Application="Wait",
             Data="60", Async="true")
    clock.advance(1)
    s.read()
    msgs = reply(s, "Hangup", ActionID="h", Channel="/^Local/")
    assert [m.name for m in msgs[:4]] == ["Success", "ChannelHungup", "ChannelHungup",
                                          "ChannelsHungupListComplete"]
    assert msgs[1].headers[-1] == ("ActionID", "h")
    # The caller's hang-up follows the list: an abandon.
    assert "QueueCallerAbandon" in [m.name for m in msgs[4:]]
    assert pbx.model.channels == {}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12),
       st.sampled_from([b"", b"Action: Login\r\nUsername: admin\r\nSecret: password\r\n\r\n"]))
def test_arbitrary_bytes_never_break_the_server(chunks, prefix):
    pbx, clock = make_pbx()
    s = Session(pbx)
    s.send(prefix)
    for chunk in chunks:
        s.send(chunk)
        s.read()
    clock.advance(2)
    if s.connected:
        # Whatever came before, a fresh request still gets an answer.
        s.send(b"\r\n\r\n" + format_action("Ping", ActionID="last"))
        last = [m for m in s.read() if m.get("ActionID") == "last"]
        assert last and last[0]["Response"] in ("Success", "Error")


def test_odd_originate_values_do_not_break_timers():
    pbx, clock, s = logged_in()
    for data, talk in (("inf", "nan"), ("1e308", "-5"), ("abc", "1e400"), ("-1", "")):
        s.action("Originate", Channel="Local/113@public", CallerID="<5550001>",
                 Application="Wait", Data=data, Variable=f"TALK={talk}", Async="1")
    assert all(c.getTime() - clock.seconds() <= 86400 for c in clock.getDelayedCalls())
    run_for(clock, 2 * 86400)
    assert pbx.model.channels == {}
