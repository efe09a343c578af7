"""Login with the shipped manager.conf rights (issue 17): no waiting for a
FullyBooted the session cannot receive, and a PBX that is really booting.

Asterisk 22 (main/manager.c, action_login) sends FullyBooted after the Login
answer only to a session that may read "system" on a PBX that has booted; a
PBX still booting sends it later, to those sessions only.  The fake Asterisk
does the same (tests/support/fake_asterisk.py); everything runs on a fake clock.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from support.fake_asterisk import SHIPPED_READ, fully_booted, list_answer
from twisted.internet.defer import Deferred

from callcenter.ami.message import Message
from callcenter.center import Callcenter
from callcenter.kpi import BusinessDay

from .conftest import Rig
from .test_protocol import result_of

T0 = 1795665000.0
Q = "q-callcenter"


def member(name: str, paused: str = "0") -> Message:
    return Message.of(
        ("Event", "QueueMember"), ("Queue", Q), ("Name", name), ("Location", f"Local/{name}@agent-connect"),
        ("StateInterface", f"Local/{name}@agent-connect"), ("Membership", "dynamic"), ("CallsTaken", "0"),
        ("LastPause", "0"), ("LoginTime", "1795664000"), ("InCall", "0"), ("Status", "1"),
        ("Paused", paused), ("PausedReason", ""))


def pbx_rig(read: str, members: list[Message]) -> tuple[Rig, Callcenter]:
    """The service's AMI client and core against a fake Asterisk whose user reads ``read``."""
    rig = Rig(ping_interval=0)
    rig.reactor.advance(T0)
    rig.server.read = read
    rig.server.answer_list("CoreShowChannels", "CoreShowChannelsComplete", list, "Channels will follow")
    rig.server.answer_list("QueueStatus", "QueueStatusComplete", lambda: members, "Queue status will follow")
    center = Callcenter(rig.reactor, business_day=BusinessDay((0, 0), ZoneInfo("UTC")))
    center.attach(rig.client)
    return rig, center


def agents(center: Callcenter) -> dict[str, str]:
    return {o["agentid"]: o["status"] for o in center.snapshot() if o.get("type") == "AGENT"}


def test_shipped_rights_reconcile_at_login_without_fullybooted(logs) -> None:
    assert "system" not in SHIPPED_READ.split(",")  # what the issue is about
    rig, center = pbx_rig(SHIPPED_READ, [member("1001"), member("1002", paused="1")])
    link = rig.start()
    # The clock has not moved: the reconcile ran as soon as Login and the first action were answered.
    assert rig.client.connected and rig.hook_calls == 1
    assert [m["Action"] for m in rig.server.actions] == ["Login", "Ping", "CoreShowChannels", "QueueStatus"]
    assert agents(center) == {"1001": "AVAIL", "1002": "PAUSED"}
    # Asterisk sent no FullyBooted to this session, and the client never missed it.
    rig.advance(60)
    link.pump()
    assert not logs.matching("FullyBooted")
    assert rig.hook_calls == 1


def test_a_session_that_reads_system_gets_fullybooted_and_reconciles_once(logs) -> None:
    rig, center = pbx_rig(SHIPPED_READ + ",system", [member("1001")])
    seen: list[str] = []
    rig.client.add_listener("FullyBooted", lambda m: seen.append(m["Status"]))
    link = rig.start()
    assert seen == ["Fully Booted"] and rig.client.connected and rig.hook_calls == 1
    assert agents(center) == {"1001": "AVAIL"}
    rig.advance(60)
    link.pump()
    assert rig.hook_calls == 1 and not logs.matching("finished booting")


def test_booting_pbx_is_reconciled_again_at_its_fullybooted(logs) -> None:
    members: list[Message] = []  # app_queue has not loaded the persistent members yet
    rig, center = pbx_rig(SHIPPED_READ + ",system", members)
    rig.server.booted = False
    link = rig.start()
    assert rig.client.connected and rig.hook_calls == 1 and agents(center) == {}
    rig.advance(4)
    members.append(member("1001", paused="1"))
    rig.server.boot()
    link.pump()
    assert rig.hook_calls == 2
    assert agents(center) == {"1001": "PAUSED"}
    assert logs.matching("AMI at 127.0.0.1:5038 finished booting (FullyBooted); running the connect hooks again")
    assert len(rig.server.actions_named("QueueStatus")) == 2


def test_booting_pbx_without_system_rights_sends_nothing_later(logs) -> None:
    rig, _center = pbx_rig(SHIPPED_READ, [])
    rig.server.booted = False
    link = rig.start()
    rig.server.boot()
    link.pump()
    assert rig.hook_calls == 1 and not logs.matching("FullyBooted")


def test_a_late_fullybooted_waits_for_the_running_hooks() -> None:
    rig = Rig(ping_interval=0)
    rig.server.booted = False
    slow: Deferred[None] = Deferred()
    runs: list[str] = []

    def hook() -> Deferred[None] | None:
        runs.append("start")
        return slow if len(runs) == 1 else None

    rig.client.add_connect_hook(hook)
    link = rig.start()
    link.push(fully_booted(3))
    link.push(fully_booted(3))  # Asterisk sends one; a second changes nothing
    assert runs == ["start"]  # the first round is still running
    slow.callback(None)
    assert runs == ["start", "start"]


def test_events_of_classes_the_user_may_not_read_never_arrive() -> None:
    rig = Rig(ping_interval=0)
    rig.server.read = SHIPPED_READ
    seen: list[str] = []
    rig.client.add_listener("*", lambda m: seen.append(m.name))
    link = rig.start()
    link.push(b"Event: Newexten\r\nPrivilege: dialplan,all\r\nChannel: x\r\n\r\n"
              b"Event: Reload\r\nPrivilege: system,all\r\n\r\n"
              b"Event: QueueCallerJoin\r\nPrivilege: agent,all\r\nUniqueid: 1.1\r\n\r\n"
              b"Event: Hangup\r\nPrivilege: call,all\r\nUniqueid: 1.1\r\n\r\n")
    assert seen == ["QueueCallerJoin", "Hangup"]
    # The items of a list answer carry no Privilege: they always reach the session.
    rig.server.answers["QueueStatus"] = list_answer("x", "QueueStatusComplete", [member("1001")], "will follow")
    d = rig.client.list_action("QueueStatus")
    link.pump()
    assert [m.name for m in result_of(d)] == ["Success", "QueueMember", "QueueStatusComplete"]


def test_logins_events_header_narrows_the_read_classes() -> None:
    rig = Rig(ping_interval=0, events="agent,system")
    rig.server.read = SHIPPED_READ  # no system: the header cannot add it
    seen: list[str] = []
    rig.client.add_listener("*", lambda m: seen.append(m.name))
    link = rig.start()
    link.push(b"Event: Hangup\r\nPrivilege: call,all\r\nUniqueid: 1.1\r\n\r\n"
              b"Event: QueueCallerJoin\r\nPrivilege: agent,all\r\nUniqueid: 1.1\r\n\r\n")
    rig.server.boot()
    link.pump()
    assert seen == ["QueueCallerJoin"]


def test_the_fake_asterisk_drops_and_closes_connections(logs) -> None:
    rig = Rig(ping_interval=0)
    link = rig.start()
    rig.server.drop_all()  # a crashed PBX: aborted
    link.pump()
    assert link.closed and rig.disconnects == 1 and not rig.client.connected
    assert logs.matching("AMI connection to 127.0.0.1:5038 lost (Connection to the other side was lost")
    rig.advance(rig.next_delay())
    link = rig.net.accept()
    assert rig.client.connected and rig.hook_calls == 2
    rig.server.connections[-1].close()  # Asterisk stopping: a clean close
    link.pump()
    assert link.closed and rig.disconnects == 2
