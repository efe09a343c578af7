"""Regressions for the defects found by attacking the core (issue 9).

Each test reproduces the attack as it was reported and shows it holding.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer

from callcenter.ami.message import Message
from callcenter.core.resync import LIST_TIMEOUT, Mode
from callcenter.model import CALL_STATUSES, LOGGEDOUT, QUEUED

from . import traces
from .test_center import T0, Q, caller, ev, login, member


@pytest.fixture
def out() -> traces.Outcome:
    return traces.new_center(T0)


def test_ghost_call_from_a_huge_hold_time_is_gone(out: traces.Outcome) -> None:
    """An AgentConnect with HoldTime 99999999999 for an unseen call used to store
    a call with the internal status "" that nothing ever cleared."""
    c = out.center
    login(c, "1001", T0)
    c.handle_event(caller(
        "AgentConnect", "7.1", T0 + 20, Queue=Q, MemberName="1001",
        Interface="Local/1001@agent-connect", HoldTime="99999999999", RingTime="1",
    ))
    assert all(call.status in CALL_STATUSES for call in c.calls.values())
    stats = c.stats()
    assert stats["calls_answered"] == 1 and stats["average_queue_time"] == 0
    assert stats["calls_online"] == len(c.calls) == 1
    # The PBX no longer has it: reconcile clears it, counted once.
    c.reconcile([], [])
    assert not c.calls and not c.connections and c.stats()["calls_online"] == 0
    assert c.stats()["calls_answered"] == 1


@pytest.mark.parametrize("bad", ["99999999999999999999", "-5", "1_000", "\u0663", " 7", "7.5", "1e3"])
def test_absurd_numbers_never_reach_the_counters(out: traces.Outcome, bad: str) -> None:
    c = out.center
    login(c, "1001", T0)
    c.handle_event(caller("QueueCallerJoin", "8.1", T0 + 10, Queue=Q, Position="1"))
    c.handle_event(caller(
        "AgentConnect", "8.1", T0 + 14, Queue=Q, MemberName="1001",
        Interface="Local/1001@agent-connect", HoldTime=bad, RingTime=bad,
    ))
    c.handle_event(caller(
        "AgentComplete", "8.1", T0 + 20, Queue=Q, MemberName="1001",
        Interface="Local/1001@agent-connect", TalkTime=bad, Reason="agent",
    ))
    s = c.stats()
    # Measured from the events' own times instead: 4 s waited, 6 s talked.
    assert (s["calls_answered"], s["average_queue_time"], s["average_handle_time"]) == (1, 4, 6)
    years = {line[:4] for line in out.lines}
    assert years == {"2026"}


def test_a_huge_queue_entry_wait_skips_that_entry_only(out: traces.Outcome) -> None:
    items = [
        Message([("Event", "QueueEntry"), ("Queue", Q), ("Uniqueid", "9.1"), ("Wait", "999999999999")]),
        Message([("Event", "QueueEntry"), ("Queue", Q), ("Uniqueid", "9.2"), ("Wait", "4")]),
    ]
    out.center.reconcile(items, [])
    assert list(out.center.calls) == ["9.2"]
    out.center.reconcile(items, [])  # and every later resync still works
    assert out.center.stats()["calls_received"] == 1
    assert [line.split(";")[3] for line in out.lines] == []  # nothing ended yet


def _final_status_traces() -> list[str]:
    return [n for n in traces.EVENT_TRACES if (traces.TRACES / f"{n}.final-status.ami").exists()]


@pytest.mark.parametrize("name", _final_status_traces())
def test_reconcile_of_an_unchanged_pbx_emits_nothing(name: str) -> None:
    """After a trace, the PBX's own final QueueStatus changes nothing."""
    trace = traces.load(name)
    done = traces.replay_direct(trace)
    published = done.changes
    done.center.reconcile(traces.final_status_items(name))
    assert done.changes == published, "a reconcile that found nothing new published changes"


def test_reconcile_of_an_unchanged_10k_center_emits_nothing(out: traces.Outcome) -> None:
    c = out.center
    items = []
    for i in range(10_000):
        agent = str(100_000 + i)
        c.handle_event(member("QueueMemberAdded", agent, T0, paused="1" if i % 3 else "0",
                              reason="lunch" if i % 3 == 1 else ""))
        items.append(member("QueueMember", agent, T0, paused="1" if i % 3 else "0",
                            reason="lunch" if i % 3 == 1 else ""))
    for m in items:  # QueueStatus names members Name/Location
        m.headers = [("Name" if k == "MemberName" else "Location" if k == "Interface" else k, v)
                     for k, v in m.headers]
    before = out.changes
    c.reconcile(items, [])
    assert out.changes == before


class ScriptedAMI:
    """List actions answered by the test, one Deferred per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, defer.Deferred]] = []
        self.dropped = 0

    def list_action(self, name: str, **headers: str) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.calls.append((name, d))
        return d

    def action(self, name: str, **headers: str) -> defer.Deferred:
        return defer.succeed(Message([("Response", "Success")]))

    def drop_connection(self) -> None:
        self.dropped += 1

    def outstanding(self) -> list[str]:
        return [n for n, d in self.calls if not d.called]

    def answer(self, items: list[Message]) -> None:
        name, d = next((n, d) for n, d in self.calls if not d.called)
        d.callback([Message([("Response", "Success")]), *items])


def _queue_member(agent: str) -> Message:
    return Message([("Event", "QueueMember"), ("Queue", Q), ("Name", agent),
                    ("Location", f"Local/{agent}@agent-connect"), ("Paused", "0"), ("Status", "1"),
                    ("InCall", "0")])


def test_one_resync_at_a_time_never_logs_out_a_live_agent(out: traces.Outcome) -> None:
    c = out.center
    ami = ScriptedAMI()
    c.ami = ami
    login(c, "1001", T0)
    first = c.resync()
    # Both lists are asked at once (Asterisk answers them one after the other).
    assert ami.outstanding() == ["CoreShowChannels", "QueueStatus"]
    # 1002 logs in while the first snapshot is in flight; its LOGGEDIN asks for a resync.
    c.handle_event(member("QueueMemberAdded", "1002", T0 + 5))
    c.handle_event(ev("UserEvent", T0 + 5, UserEvent="LOGGEDIN", agentid="1003",
                      member="Local/1003@agent-connect"))
    assert len(ami.outstanding()) == 2  # no second resync runs alongside
    ami.answer([])
    ami.answer([_queue_member("1001")])  # taken before 1002 joined
    assert "1002" in c.agents and first.called
    # The one queued resync runs now, with a fresh snapshot.
    assert ami.outstanding() == ["CoreShowChannels", "QueueStatus"]
    ami.answer([])
    ami.answer([_queue_member("1001"), _queue_member("1002")])
    assert sorted(c.agents) == ["1001", "1002"]
    assert not [line for line in out.lines if ";AGENT;1002;" in line and LOGGEDOUT in line]
    assert c.resyncer.mode is Mode.IDLE


def test_a_list_action_that_never_completes_is_given_up(out: traces.Outcome) -> None:
    c = out.center
    ami = ScriptedAMI()
    c.ami = ami
    c.resync()
    out.clock.advance(LIST_TIMEOUT + 1)
    assert ami.dropped == 1 and c.resyncer.mode is Mode.IDLE
    c.resync()  # the next login starts over
    ami.answer([])
    ami.answer([_queue_member("1001")])
    assert "1001" in c.agents


# Single fields of real events corrupted: missing, empty, negative, huge,
# non-numeric, non-ASCII digits, non-UTF-8 (decoded with replacement).
TRACE = traces.load("answered")
MESSAGES = TRACE.messages()
FIELDS = ["Uniqueid", "Queue", "MemberName", "Interface", "HoldTime", "TalkTime", "RingTime",
          "Paused", "PausedReason", "Timestamp", "CallerIDNum", "Position", "Status", "UserEvent"]
CORRUPT = st.sampled_from([None, "", "-1", "99999999999999", "abc", "\u0661\u0662",
                           "\ufffd\ufffd", "x" * 300, "1e308", "nan"])


def _invariants(center: Any) -> None:
    for call in center.calls.values():
        assert call.status in CALL_STATUSES
    for conn in center.connections.values():
        assert conn.id in center.calls
    for agent in center.agents.values():
        assert agent.queues and agent.status != LOGGEDOUT
    s = center.stats()
    assert s["calls_waiting"] == sum(1 for c in center.calls.values() if c.status == QUEUED and not c.left)
    for key in ("average_queue_time", "average_handle_time", "average_abandoned_time", "longest_wait"):
        assert 0 <= s[key] <= 7 * 86400
    assert 0 <= s["sla"] <= 100 and 0 <= s["sla_with_abandoned"] <= 100


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(MESSAGES) - 1), st.sampled_from(FIELDS), CORRUPT),
                min_size=1, max_size=6))
def test_corrupted_fields_of_real_events_keep_the_invariants(cuts: list[tuple[int, str, str | None]]) -> None:
    messages = list(MESSAGES)
    for at, key, value in cuts:
        t, msg = messages[at]
        headers = [(k, v) for k, v in msg.headers if k != key]
        if value is not None:
            headers.append((key, value))
        messages[at] = (t, Message(headers))
    out = traces.new_center(TRACE.start)
    for t, msg in messages:
        if t > out.clock.seconds():
            out.clock.advance(t - out.clock.seconds())
        out.center.handle_event(msg)
        _invariants(out.center)
    out.clock.advance(10)
    _invariants(out.center)
