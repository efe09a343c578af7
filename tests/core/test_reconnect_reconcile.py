"""The AMI connection drops mid-message; while we are away an agent is paused,
a call ends and a caller gives up.  After the client reconnects (backoff, new
login) the center reconciles with QueueStatus: each change shows, is
reported once and counted once.  All on a fake clock."""

from __future__ import annotations

from ami.conftest import Rig  # tests/ is on sys.path: its folders are packages
from twisted.internet.error import ConnectionLost

from callcenter.ami.message import format_message
from callcenter.center import Callcenter
from callcenter.kpi import BusinessDay

from .traces import UTC

T0 = 1795665000.0
Q = "q-callcenter"


def status_answer(members: list[tuple[str, str, str]], entries: list[tuple[str, str, int]] = ()) -> bytes:
    items = [[("Event", "QueueParams"), ("Queue", Q), ("Calls", str(len(entries))), ("ActionID", "x")]]
    for name, paused, reason in members:
        items.append([
            ("Event", "QueueMember"), ("Queue", Q), ("Name", name),
            ("Location", f"Local/{name}@agent-connect"), ("Membership", "dynamic"),
            ("LastPause", "0"), ("LoginTime", "1"), ("InCall", "0"), ("Status", "1"),
            ("Paused", paused), ("PausedReason", reason), ("ActionID", "x"),
        ])
    for uid, cid, wait in entries:
        items.append([
            ("Event", "QueueEntry"), ("Queue", Q), ("Position", "1"), ("Uniqueid", uid),
            ("CallerIDNum", cid), ("Wait", str(wait)), ("ActionID", "x"),
        ])
    out = format_message([("Response", "Success"), ("ActionID", "x"), ("EventList", "start"),
                          ("Message", "Queue status will follow")])
    out += b"".join(format_message(i) for i in items)
    out += format_message([("Event", "QueueStatusComplete"), ("ActionID", "x"),
                           ("EventList", "Complete"), ("ListItems", str(len(items)))])
    return out


EMPTY_CHANNELS = format_message([("Response", "Success"), ("ActionID", "x"), ("EventList", "start")]) + \
    format_message([("Event", "CoreShowChannelsComplete"), ("ActionID", "x"), ("EventList", "Complete"),
                    ("ListItems", "0")])


def event(name: str, **headers: str) -> bytes:
    return format_message([("Event", name), ("Privilege", "agent,all"), *headers.items()])


def join(uid: str) -> bytes:
    return event("QueueCallerJoin", Channel=f"PJSIP/t-{uid}", CallerIDNum="555" + uid, Uniqueid=uid,
                 Queue=Q, Position="1", Count="1")


def test_drop_mid_message_backoff_relogin_and_reconcile() -> None:
    rig = Rig(ping_interval=0)
    rig.reactor.advance(T0)
    center = Callcenter(rig.reactor, business_day=BusinessDay((0, 0), UTC))
    lines: list[str] = []
    center.subscribe(lambda ch: lines.extend(t.line(UTC) for t in ch.transitions))
    center.attach(rig.client)
    rig.server.answers["CoreShowChannels"] = EMPTY_CHANNELS
    rig.server.answers["QueueStatus"] = status_answer([("1001", "0", ""), ("1002", "0", "")])

    link = rig.start()
    assert rig.server.logins == 1 and rig.hook_calls == 1
    assert {a: x.status for a, x in center.agents.items()} == {"1001": "AVAIL", "1002": "AVAIL"}

    rig.advance(5)
    link.send(join("77.1"))
    rig.advance(3)
    link.send(event("QueueCallerLeave", Uniqueid="77.1", Queue=Q, Position="1", Count="0")
              + event("AgentConnect", Uniqueid="77.1", CallerIDNum="55577.1", Queue=Q, MemberName="1002",
                      Interface="Local/1002@agent-connect", HoldTime="3", RingTime="1"))
    rig.advance(1)
    link.send(join("77.2"))
    assert center.agents["1002"].status == "INCALL" and center.calls["77.2"].status == "QUEUED"

    # The PBX dies in the middle of a message (an AgentComplete that never arrives).
    partial = event("AgentComplete", Uniqueid="77.1", Queue=Q, MemberName="1002", TalkTime="20")
    link.send(partial[:50])
    link.close(ConnectionLost("reset by peer"))
    assert not rig.client.connected

    # While we are away: 1001 goes to a meeting, 77.1 ends, 77.2 gives up.
    rig.server.answers["QueueStatus"] = status_answer([("1001", "1", "meeting"), ("1002", "0", "")])
    first = rig.next_delay()
    assert first >= 1.0
    rig.advance(first - 0.01)
    assert rig.net.waiting == 0
    rig.advance(0.01)
    link = rig.net.accept()
    assert rig.server.logins == 2 and rig.hook_calls == 2  # logged in again, resynced

    agents = {o["agentid"]: o for o in center.snapshot() if o["type"] == "AGENT"}
    assert agents["1001"]["status"] == "PAUSED" and agents["1001"]["reason"] == "meeting"
    assert agents["1002"]["status"] == "AVAIL"
    assert not center.calls and not center.connections
    stats = center.stats()
    assert (stats["calls_received"], stats["calls_answered"], stats["calls_abandoned"]) == (2, 1, 1)
    assert stats["connections_online"] == 0 and stats["calls_waiting"] == 0

    def calls(uid: str, status: str) -> list[str]:
        return [line for line in lines if f";CALL;555{uid};{status};" in line]

    assert len(calls("77.1", "INCALL")) == 1 and len(calls("77.2", "QUEUED")) == 1

    # Dropped again (cleanly this time), the same truth: nothing new is reported or counted.
    before = list(lines)
    link.close(ConnectionLost("gone"))
    # (Growth and cap of the backoff: tests/ami/test_client_clock.py.)
    second = rig.next_delay()
    rig.advance(second - 0.01)
    assert rig.net.waiting == 0  # no reconnect before the backoff delay
    rig.advance(0.01)
    rig.net.accept()
    assert rig.server.logins == 3
    assert lines == before and center.stats() == stats
    rig.client.stopService()
