"""An agent who logs in while the service is away, as the queue log names it.

app_queue writes ADDMEMBER/REMOVEMEMBER with the member's interface, or with
its member name under ``log_membername_as_agent=yes`` (apps/app_queue.c,
aqm_exec/rqm_exec); PAUSE, CONNECT and the rest always name the member
(``member->membername``).  The lines below are the traces' own
(``abandon.queue_log``: ``Local/1001@agent-connect`` joins, then ``1001``
is paused), and the shipped queues.conf's form of the same.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from twisted.internet.task import Clock

from callcenter.ami import events as ev
from callcenter.center import Callcenter
from callcenter.kpi import BusinessDay
from callcenter.model import LOGGEDIN
from callcenter.queuelog.entries import parse_line
from callcenter.queuelog.mapping import Newcomers, entry_key, event_key, resource, to_events

ADD_BY_INTERFACE = b"1795665108|1795665107.1|q-callcenter|Local/1001@agent-connect|ADDMEMBER|"
ADD_BY_NAME = b"1795665108|1795665107.1|q-callcenter|1001|ADDMEMBER|"
PAUSE = b"1795665108|NONE|q-callcenter|1001|PAUSE|"
CONNECT = b"1795665115|1795665109.5|q-callcenter|1001|CONNECT|4|1795665111.9|2"
REMOVE_BY_INTERFACE = b"1795665112|1795665112.3|q-callcenter|Local/1001@agent-connect|REMOVEMEMBER|"


def center() -> Callcenter:
    return Callcenter(Clock(), sla=10, business_day=BusinessDay((0, 0), ZoneInfo("UTC")))


def replay(c: Callcenter, newcomers: Newcomers, *lines: bytes) -> list[ev.Event]:
    out: list[ev.Event] = []
    for line in lines:
        events, _ = to_events(parse_line(line), c.roster, newcomers)
        for e in events:
            c.apply_replayed(e)
        out += events
    return out


def test_a_member_named_by_agent_id_joins_at_once() -> None:
    """The shipped queues.conf: ADDMEMBER says who; the interface comes later."""
    c = center()
    got = replay(c, Newcomers(), ADD_BY_NAME, PAUSE)
    assert [(type(e).__name__, getattr(e, "kind", ""), e.ts) for e in got] == [
        ("MemberChanged", "added", 1795665108.0), ("MemberChanged", "pause", 1795665108.0)]
    agent = c.roster.get("1001")
    assert agent is not None and agent.status == LOGGEDIN and agent.interface == ""
    assert set(agent.queues) == {"q-callcenter"}


def test_a_member_named_by_interface_joins_when_a_line_names_it() -> None:
    c, newcomers = center(), Newcomers()
    assert replay(c, newcomers, ADD_BY_INTERFACE) == []
    assert c.roster.get("1001") is None and len(newcomers) == 1
    got = replay(c, newcomers, PAUSE)
    added, paused = got
    assert (added.kind, added.member, added.interface, added.ts) == (
        "added", "1001", "Local/1001@agent-connect", 1795665108.0)
    assert (paused.kind, paused.paused) == ("pause", True)
    agent = c.roster.get("1001")
    assert agent is not None and agent.interface == "Local/1001@agent-connect"
    assert agent.status == LOGGEDIN and agent.since == 1795665108.0
    assert len(newcomers) == 0


def test_its_first_call_names_it_too() -> None:
    c, newcomers = center(), Newcomers()
    replay(c, newcomers, ADD_BY_INTERFACE)
    got = replay(c, newcomers, CONNECT)
    assert [type(e).__name__ for e in got] == ["MemberChanged", "AgentConnected"]
    assert c.roster.get("1001").interface == "Local/1001@agent-connect"


def test_one_who_left_before_anything_named_it_is_forgotten() -> None:
    c, newcomers = center(), Newcomers()
    replay(c, newcomers, ADD_BY_INTERFACE, REMOVE_BY_INTERFACE)
    assert len(newcomers) == 0
    assert replay(c, newcomers, PAUSE) == []
    assert c.roster.get("1001") is None


def test_an_interface_whose_name_is_not_the_members_is_left_to_the_reconcile() -> None:
    c, newcomers = center(), Newcomers()
    replay(c, newcomers, b"1795665108|1795665107.1|q-callcenter|PJSIP/alice|ADDMEMBER|")
    assert replay(c, newcomers, PAUSE) == []
    assert c.roster.get("1001") is None and len(newcomers) == 1


def test_held_interfaces_are_bounded() -> None:
    newcomers = Newcomers(limit=2)
    for n in (1, 2, 3):
        newcomers.hold(parse_line(b"1795665108|x.1|q|Local/%d@agent-connect|ADDMEMBER|" % n))
    assert len(newcomers) == 2
    assert newcomers.claim("1", "q") == []
    assert [e.agent for e in newcomers.claim("3", None)] == ["Local/3@agent-connect"]


def test_resource_is_the_name_part_of_an_interface() -> None:
    assert resource("Local/1001@agent-connect") == "1001"
    assert resource("PJSIP/1001") == "1001"
    assert resource("PJSIP/1001/sip:1001@127.0.0.1") == "1001"
    assert resource("1001") == ""


def test_an_entry_and_the_ami_event_it_repeats_share_one_identity() -> None:
    """Whichever way the log names the member, its ADDMEMBER is the
    QueueMemberAdded AMI gave (so a catch-up does not apply it twice)."""
    c = center()
    ami = ev.MemberChanged("added", "q-callcenter", "1001", "Local/1001@agent-connect", True, "", "", 1795665108.0)
    c.apply(ami)
    assert entry_key(parse_line(ADD_BY_INTERFACE), c.roster) == event_key(ami)
    assert entry_key(parse_line(ADD_BY_NAME), c.roster) == event_key(ami)
    removed = ev.MemberRemoved("q-callcenter", "1001", "Local/1001@agent-connect", 1795665112.0)
    assert entry_key(parse_line(REMOVE_BY_INTERFACE), c.roster) == event_key(removed)
