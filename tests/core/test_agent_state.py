"""Issue 15: what each agent is doing, replayed from the real Asterisk traces.

Every expected value is read by hand off the trace's own events (quoted in
the comments: event, its Timestamp) or its ``expected.json``/queue_log, never
from the code.  ``WRAPUP`` is the rig's queues.conf ``wrapuptime=2``
(REFERENCE.md, "The rig"), which QueueStatus does not report (gotcha 9): the
service gets it from ``--wrapup-time``.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from callcenter.center import Callcenter, Changes
from callcenter.kpi import BusinessDay

from .traces import UTC, final_status_items, load

WRAPUP = 2


class Timeline:
    """Every AGENT/CALL object and STATS a replay published, with the event's time."""

    def __init__(self, name: str) -> None:
        self.trace = load(name)
        self.clock = Clock()
        self.clock.advance(self.trace.start)
        self.center = Callcenter(
            self.clock, sla=10, business_day=BusinessDay((0, 0), UTC), wrapup_default=WRAPUP
        )
        self.objects: dict[tuple[str, str], list[tuple[float, dict[str, Any]]]] = {}
        self.stats: list[tuple[float, dict[str, Any]]] = []
        self.lines: list[str] = []
        self.center.subscribe(self._record)
        for t, msg in self.trace.messages():
            if t > self.clock.seconds():
                self.clock.advance(t - self.clock.seconds())
            self.center.handle_event(msg)
        self.clock.advance(10)  # grace and wrap-up timers

    def _record(self, ch: Changes) -> None:
        for o in ch.objects:
            key = o.get("agentid") if o["type"] == "AGENT" else o.get("id")
            self.objects.setdefault((o["type"], key), []).append((ch.ts, o))
        if ch.stats is not None:
            self.stats.append((ch.ts, ch.stats))
        self.lines.extend(t.line(UTC) for t in ch.transitions)

    def agent(self, agentid: str, t: float) -> dict[str, Any]:
        """The AGENT object as the page had it at time ``t``."""
        return _at(self.objects[("AGENT", agentid)], t)

    def call(self, uid: str, t: float) -> dict[str, Any]:
        return _at(self.objects[("CALL", uid)], t)

    def queue(self, queue: str, t: float) -> dict[str, Any]:
        return _at(self.stats, t)["queues"][queue]


def _at(history: list[tuple[float, dict[str, Any]]], t: float) -> dict[str, Any]:
    seen = [o for ts, o in history if ts <= t]
    assert seen, f"nothing published before {t}"
    return seen[-1]


def test_ringnoanswer_rings_one_phone_then_the_other() -> None:
    tl = Timeline("ringnoanswer")
    uid = "1795665203.5"
    # AgentCalled 1795665203.717925 (1001) … AgentRingNoAnswer 1795665218.717723 (RingTime 15000 ms).
    assert tl.agent("1001", 1795665203.70)["ringing"] == ""
    a = tl.agent("1001", 1795665210)
    assert (a["ringing"], a["status"]) == (uid, "AVAIL")  # ringing is not a status
    assert tl.agent("1001", 1795665218.7176)["ringing"] == uid
    assert tl.agent("1001", 1795665218.7178)["ringing"] == ""
    # The queue retries 1002: AgentCalled 1795665220.719291 … AgentConnect 1795665221.721763.
    assert tl.agent("1002", 1795665221.0)["ringing"] == uid
    a = tl.agent("1002", 1795665221.73)
    assert (a["status"], a["ringing"]) == ("INCALL", "")
    assert a["calls_taken"] == 1 and a["last_call"] == 0  # counted when answered
    assert a["talk_time"] == 0  # added when the call ends
    # AgentComplete 1795665226.226138 (TalkTime 5); the QueueMemberStatus after it says LastCall 1795665226.
    a = tl.agent("1002", 1795665226.3)
    assert (a["status"], a["last_call"], a["talk_time"]) == ("AVAIL", 1795665226, 5)
    assert a["wrapup_until"] == 1795665226 + WRAPUP
    # Second caller 1795665229.11 rings 1001 (AgentCalled 1795665229.721365) until it
    # abandons (QueueCallerAbandon 1795665237.217282): no AgentRingNoAnswer then (gotcha 7).
    assert tl.agent("1001", 1795665230)["ringing"] == "1795665229.11"
    assert tl.agent("1001", 1795665237.3)["ringing"] == ""
    # LoginTime of each QueueMemberAdded; 1001 never completed a call.
    assert tl.agent("1001", 1795665240)["login_time"] == 1795665201
    assert tl.agent("1002", 1795665240)["login_time"] == 1795665202
    assert tl.agent("1001", 1795665240)["last_call"] == 0
    # While 1001 rings and 1002 is still LOGGEDIN (unpaused at 1795665213.215832): none available.
    q = tl.queue("q-callcenter", 1795665210)
    assert (q["agents_available"], q["agents_loggedin"]) == (0, 2)
    # After 1001's ring ends (1795665218.718326, Status 1) both are idle and unpaused.
    assert tl.queue("q-callcenter", 1795665219)["agents_available"] == 2
    # 1002 in wrap-up until 1795665228: only 1001 is available; then 1002 is, and 1001
    # rings for the second caller (AgentCalled 1795665229.721365).
    assert tl.queue("q-callcenter", 1795665227)["agents_available"] == 1
    assert tl.queue("q-callcenter", 1795665230)["agents_available"] == 1


def test_pause_during_call_is_pending_then_paused_at_hang_up() -> None:
    tl = Timeline("pause-during-call")
    # AgentConnect 1795664452.385483; QueueMemberPause Paused 1 "after call work" 1795664455.387109.
    a = tl.agent("1001", 1795664455.0)
    assert (a["status"], a["paused"]) == ("INCALL", False) and "reason" not in a
    a = tl.agent("1001", 1795664455.4)
    assert (a["status"], a["paused"], a["reason"]) == ("INCALL", True, "after call work")
    # AgentComplete 1795664462.895813: the pause takes effect; LastCall 1795664462 (QueueMemberStatus after it).
    a = tl.agent("1001", 1795664462.8970)
    assert (a["status"], a["paused"], a["reason"]) == ("PAUSED", True, "after call work")
    assert (a["last_call"], a["wrapup_until"]) == (1795664462, 1795664462 + WRAPUP)
    # The rig's old hangup handler unpauses (QueueMemberPause Paused 0, 1795664462.897912; gotcha 4).
    a = tl.agent("1001", 1795664462.9)
    assert (a["status"], a["paused"]) == ("AVAIL", False)
    assert a["login_time"] == 1795664449
    # That PAUSED period's report line carries its reason in the eighth column; no other line does.
    rows = [line.rstrip("\n").split(";") for line in tl.lines]
    assert all(len(r) == 8 for r in rows)
    paused = [r for r in rows if r[1] == "AGENT" and r[3] == "PAUSED"]
    assert [(r[4], r[7]) for r in paused] == [("0", "after call work")]
    assert all(r[7] == "" for r in rows if r not in paused)
    # Second call: AgentComplete 1795664471.908816, LastCall 1795664471 = expected.json's final member.
    final = tl.trace.expected["asterisk_members_final"][0]
    a = tl.agent("1001", tl.clock.seconds())
    assert a["last_call"] == int(final["LastCall"]) == 1795664471
    assert a["calls_taken"] == int(final["CallsTaken"])


def test_login_times_names_and_a_phone_reason_in_the_configured_spelling() -> None:
    tl = Timeline("login")
    # QueueMemberAdded LoginTime: 1001 1795665060, 1002 1795665061, 1003 1795665062.
    for agentid, login in (("1001", 1795665060), ("1002", 1795665061), ("1003", 1795665062)):
        a = tl.agent(agentid, 1795665063)
        assert (a["status"], a["login_time"], a["last_call"], a["paused"]) == ("LOGGEDIN", login, 0, True)
        # The LOGGEDIN UserEvent's channel has CallerIDName "Agent 100X" (no name: header in the rig).
        assert a["name"] == f"Agent {agentid}"
    # QueueMemberPause 1002 Paused 1 PausedReason "lunch" 1795665066.223194: the default "Lunch".
    a = tl.agent("1002", 1795665066.3)
    assert (a["status"], a["paused"], a["reason"]) == ("PAUSED", True, "Lunch")
    # QueueMemberRemoved 1003 1795665067.725222.
    assert tl.agent("1003", 1795665067.8)["status"] == "LOGGEDOUT"
    finals = {m["Name"]: m for m in tl.trace.expected["asterisk_members_final"]}
    for agentid, m in finals.items():
        assert tl.center.agents[agentid].to_json()["login_time"] == int(m["LoginTime"])


def test_answered_rings_positions_and_wrap_up_as_asterisk_applied_it() -> None:
    tl = Timeline("answered")
    # AgentCalled 1001 for 1795665079.5 at 1795665079.883309, AgentConnect 1795665080.885171.
    assert tl.agent("1001", 1795665080.0)["ringing"] == "1795665079.5"
    a = tl.agent("1001", 1795665080.9)
    assert (a["status"], a["ringing"], a["calls_taken"]) == ("INCALL", "", 1)
    # Callers wait in arrival order; QueueCallerJoin's own Position: .13 joins 2nd
    # (1795665081.882749), moves up when .9 leaves (QueueCallerLeave 1795665081.884149);
    # .15 joins 2nd (1795665082.882575).
    assert tl.call("1795665081.13", 1795665081.883)["position"] == 2
    assert tl.call("1795665081.13", 1795665081.885)["position"] == 1
    assert tl.call("1795665082.15", 1795665082.9)["position"] == 2
    assert tl.call("1795665081.13", 1795665081.883)["callername"] == "Caller"
    # AgentComplete 1001 1795665085.389463 (LastCall 1795665085): wrap-up to 1795665087; Asterisk
    # rang 1001 next at 1795665087.886834 (AgentCalled), i.e. only once it was over.
    a = tl.agent("1001", 1795665085.5)
    assert (a["last_call"], a["wrapup_until"]) == (1795665085, 1795665087)
    assert a["wrapup_until"] <= 1795665087.886834
    # 1002: AgentComplete 1795665087.388358, next AgentCalled 1795665089.887064.
    a = tl.agent("1002", 1795665087.5)
    assert (a["last_call"], a["wrapup_until"]) == (1795665087, 1795665089)
    # Callers were waiting during both wrap-ups, with nobody available: the visible reason.
    q = tl.queue("q-callcenter", 1795665086)
    assert q["calls_waiting"] == 2 and q["agents_available"] == 0
    finals = {m["Name"]: m for m in tl.trace.expected["asterisk_members_final"]}
    for agentid, m in finals.items():
        a = tl.center.agents[agentid].to_json()
        assert (a["last_call"], a["login_time"], a["calls_taken"]) == (
            int(m["LastCall"]), int(m["LoginTime"]), int(m["CallsTaken"]))


def test_transfer_small_ring_canceled_and_last_calls() -> None:
    tl = Timeline("queue-entries/transfer-small")
    rows = tl.trace.expected["callers"]
    # The caller who hangs up while 1002 rings (queue_log RINGCANCELED 1498 ms, ABANDON).
    row = next(r for r in rows if r.get("ring_canceled"))
    (cancel,) = row["ring_canceled"]
    assert tl.agent(cancel["agent"], row["t_end"] - 0.1)["ringing"] == row["uniqueid"]
    assert tl.agent(cancel["agent"], row["t_end"] + 0.01)["ringing"] == ""
    # A blind transfer ends the agent's call (queue_log BLINDTRANSFER): last_call is its end.
    first = next(r for r in rows if r["outcome"] == "transferred-out")
    assert tl.agent(first["agent"], first["t_end"] + 0.01)["last_call"] == int(first["t_end"])
    for m in tl.trace.expected["asterisk_members_final"]:
        a = tl.center.agents[m["Name"]].to_json()
        assert (a["last_call"], a["login_time"], a["calls_taken"]) == (
            int(m["LastCall"]), int(m["LoginTime"]), int(m["CallsTaken"]))
        assert a["ringing"] == "" and a["paused"] is False


@pytest.mark.parametrize("name", ["ringnoanswer", "pause-during-call", "login", "answered"])
def test_reconcile_of_the_final_pbx_publishes_nothing_new(name: str) -> None:
    tl = Timeline(name)
    published: list[Changes] = []
    tl.center.subscribe(published.append)
    tl.center.reconcile(final_status_items(name))
    assert published == []
