"""The life of a queue call across the owners: IVR → queue → agent → end.

``CallFlow`` applies the call-related domain events.  It holds the rules that
span calls, connections, agents and counters (a call answered opens a
connection, binds the agent and counts an answer), so that each rule is
written once.  Each method checks first and then changes, so an event either
applies whole or changes nothing.

Rules that keep it right on a real Asterisk (see the traces' REFERENCE.md):
- ``AgentComplete`` is matched to the agent's connection when it lacks the
  caller's fields, and by Uniqueid *and* Queue when it has them;
- a ``QueueCallerAbandon`` is an abandon when the caller's hang-up was
  requested before it (or comes within EXIT_WINDOW); otherwise it is a queue
  timeout (gotcha 20), except on a session that shows no hang-ups at all;
- a transferred caller's next queue entry may arrive before the transfer's
  ``AgentComplete`` (gotcha 21): it is held and applied right after;
- events for calls that already ended change nothing, so nothing counts twice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from callcenter.ami import events as ev
from callcenter.core.agents import Roster
from callcenter.core.calls import NEW, CallBook
from callcenter.core.connections import Switchboard
from callcenter.core.counting import Tally, whole
from callcenter.model import ABANDON, HANGUP, INCALL, NA, QUEUED, Agent, Call, Connection

log = Logger()

#: How long to wait for AgentComplete after the caller hung up during a call
#: before closing the call from our own clock (Asterisk sends it within ms).
COMPLETE_GRACE = 3.0
#: Bounds of the small "out of order" memories (early completions, held joins).
ORDER_MEMORY = 1_000
#: A QueueCallerAbandon with no hang-up requested before it is a queue timeout
#: unless the caller's hang-up shows up within this many seconds after it
#: (the request itself may have been missed while we were disconnected).
EXIT_WINDOW = 1.0


class CallFlow:
    def __init__(
        self,
        clock: IReactorTime,
        tally: Tally,
        roster: Roster,
        calls: CallBook,
        switchboard: Switchboard,
        transact: Callable[[float, Callable[[], None]], None],
    ) -> None:
        self.clock = clock
        self.tally = tally
        self.roster = roster
        self.calls = calls
        self.switchboard = switchboard
        self._transact = transact  # runs a change outside an AMI event (timers)
        self._grace: dict[str, IDelayedCall] = {}
        self._hanging_up: set[str] = set()  # waiting callers whose hang-up was requested
        self.sees_hangup_requests = False  # the session delivers class "call" events
        self._held_joins: OrderedDict[str, ev.CallerJoined] = OrderedDict()
        self._early_completes: OrderedDict[tuple[str, str], ev.AgentCompleted] = OrderedDict()
        # uid -> (QueueCallerAbandon time, hold, timer): abandon or timeout, not yet known.
        self._exits: dict[str, tuple[float, int, IDelayedCall]] = {}
        #: Optional judge of a QueueCallerAbandon nobody's hang-up explains:
        #: ``(uid, queue) -> "abandon" | "timeout" | None`` (Asterisk's queue_log
        #: says which, callcenter/queuelog/catchup.py), asked at the end of EXIT_WINDOW.
        self.exit_verdict: Callable[[str, str], str | None] | None = None
        # Wrap-up after a call: the member's own Wrapuptime, else its queue's
        # (queues.conf wrapuptime, which QueueStatus does not report: --wrapup-time).
        self.wrapup_times: dict[str, int] = {}
        self.wrapup_default = 0
        self._wrapups: dict[str, IDelayedCall] = {}  # agent id -> end of its wrap-up

    def stop(self) -> None:
        timers = [*self._grace.values(), *(t for _, _, t in self._exits.values())]
        for call in [*timers, *self._wrapups.values()]:
            if call.active():
                call.cancel()
        self._grace.clear()
        self._exits.clear()
        self._wrapups.clear()

    # ------------------------------------------------------------ IVR and hang-ups

    def caller_announced(self, e: ev.CallerAnnounced) -> None:
        if e.uid in self.calls or self.calls.ended(e.uid):
            return
        self.calls.announce(e.uid, e.callerid, e.channel, e.ts, e.callername)

    def hangup_requested(self, e: ev.HangupRequested) -> None:
        self.sees_hangup_requests = True
        self._settle(e.uid, e.ts)
        call = self.calls.get(e.uid)
        if call is not None and call.status == QUEUED:
            if len(self._hanging_up) >= len(self.calls) + ORDER_MEMORY:
                self._hanging_up.intersection_update(self.calls.calls)
            self._hanging_up.add(e.uid)

    def caller_hung_up(self, e: ev.CallerHungUp) -> None:
        self._settle(e.uid, e.ts)
        call = self.calls.get(e.uid)
        if call is not None:
            self.caller_gone(call, e.ts)

    def caller_gone(self, call: Call, ts: float) -> None:
        """The caller's channel hung up (UserEvent CALLERHANGUP or Hangup)."""
        self._hanging_up.discard(call.id)
        if call.status == NA:
            self.calls.set_status(call, ABANDON, ts)  # never queued (or after a timeout): no KPI
        elif call.status == QUEUED:
            left_at = call.left_at if call.left_at is not None else ts
            if call.left and ts - left_at > EXIT_WINDOW:
                # Left the queue unanswered (timeout), hung up later: not an abandon.
                # Its queue time ends when it left (the report's QUEUED line and
                # the webhooks' "timeout" read that), then the hang-up ends it.
                self._time_out(call, whole(left_at - (call.entered or left_at)), left_at)
                self.calls.set_status(call, ABANDON, ts)
            elif call.left:
                # Left and hung up at once: its QueueCallerAbandon did not reach us.
                self._abandon(call, whole(left_at - (call.entered or left_at)), left_at)
            else:
                # QueueCallerAbandon did not reach us; Asterisk would have counted one.
                self._abandon(call, whole(ts - (call.entered or ts)), ts)
        elif call.status == INCALL and call.id not in self._grace:
            # AgentComplete normally follows within milliseconds; don't race it.
            self._grace[call.id] = self.clock.callLater(
                COMPLETE_GRACE, self._grace_expired, call.id, ts
            )

    def _grace_expired(self, uid: str, hung_up_at: float) -> None:
        self._grace.pop(uid, None)
        conn = self.switchboard.get(uid)
        if conn is not None:
            self._transact(
                self.clock.seconds(),
                lambda: self.complete(conn, whole(hung_up_at - conn.since), hung_up_at),
            )

    # ------------------------------------------------------------ queue entry

    def joined(self, e: ev.CallerJoined) -> None:
        self._settle(e.uid, None)  # in another queue: the last entry timed out
        if not self.calls.may_enter(e.uid):
            return
        call = self.calls.get(e.uid)
        if call is not None:
            if call.status == QUEUED and call.queue == e.queue and not call.left:
                return  # duplicate (after a QueueCallerLeave it is a retry of the same queue)
            if call.status == INCALL:
                if call.queue != e.queue:
                    # Transferred: the new entry can beat the transfer's AgentComplete.
                    self._remember(self._held_joins, e.uid, e)
                return
        call = self.calls.get_or_create(e.uid, e.callerid, e.channel, e.ts)
        if e.callername:
            call.callername = e.callername
        self.enter_queue(call, e.queue, e.ts)

    def enter_queue(self, call: Call, queue: str, entered: float) -> None:
        if call.status == QUEUED and (call.left or call.queue != queue):
            # Overflow or retry (its QueueCallerLeave maybe missed while we were
            # away): that entry ended unanswered, without a hang-up.
            self.tally.timeout(call.day, call.queue)
        call.entered = entered
        call.left = False
        call.day = self.tally.business_day.day_of(entered)
        self.tally.entry(call.day, queue)
        # The status that ends (IVR, or the wait in a previous queue) ended at entry,
        # which may be earlier than now when the entry is inferred (HoldTime, Wait).
        self.calls.set_status(
            call, QUEUED, entered, duration=whole(entered - call.since), queue=queue
        )

    def left(self, e: ev.CallerLeft) -> None:
        call = self.calls.get(e.uid)
        if call is not None and call.status == QUEUED and not call.left and call.queue == e.queue:
            # Out of the queue: no longer waiting, whether AgentConnect or a
            # timeout (then another queue, voicemail, a hang-up) follows.
            self.calls.mark_left(call, e.ts)

    def abandoned(self, e: ev.CallerAbandoned) -> None:
        call = self.calls.get(e.uid)
        if call is None or call.status != QUEUED or call.queue != e.queue:
            return
        hold = e.hold if e.hold is not None else whole(e.ts - (call.entered or e.ts))
        if e.uid in self._hanging_up:
            # A real abandon: app_queue saw the hang-up first (REFERENCE.md gotcha 20).
            self._abandon(call, hold, e.ts)
        elif e.uid not in self._exits:
            # app_queue's timeout (and EXITEMPTY, WITHDRAW) publishes the same event,
            # with nobody hung up.  Decided by what follows within EXIT_WINDOW: the
            # caller's hang-up (abandon), its next queue or the end of the window
            # (timeout; an abandon on a session that never shows hang-ups).  Also on
            # a session not yet known to deliver hang-ups (just started): deciding at
            # once there took the timeout of a caller on its way to the next queue
            # for an abandon and lost that queue entry.
            timer = self.clock.callLater(EXIT_WINDOW, self._exit_window_over, e.uid)
            self._exits[e.uid] = (e.ts, hold, timer)

    def undecided(self, uid: str) -> bool:
        """A QueueCallerAbandon of ``uid`` waits for EXIT_WINDOW (abandon or timeout?)."""
        return uid in self._exits

    def _exit_window_over(self, uid: str) -> None:
        if uid in self._exits:
            self._transact(self.clock.seconds(), lambda: self._settle(uid, None, judged=True))

    def _settle(self, uid: str, hung_up_at: float | None, judged: bool = False) -> None:
        """Decide a pending QueueCallerAbandon: an abandon when the caller hung
        up within EXIT_WINDOW of it, else a timeout (back in the dialplan)."""
        pending = self._exits.pop(uid, None)
        if pending is None:
            return
        ts, hold, timer = pending
        if timer.active():
            timer.cancel()
        call = self.calls.get(uid)
        if call is None or call.status != QUEUED:
            return
        if hung_up_at is not None and hung_up_at - ts <= EXIT_WINDOW:
            self._abandon(call, hold, ts)
            return
        verdict = None
        if judged:
            # The window ended with no hang-up seen: ask the queue log, and
            # without an answer keep the session's rule: a session that delivers
            # class "call" would have shown the hang-up of an abandon before its
            # QueueCallerAbandon, so this is a timeout; on one that shows no
            # hang-ups nothing tells, so it is counted abandoned (the old rule).
            if self.exit_verdict is not None:
                verdict = self.exit_verdict(uid, call.queue)
            if verdict is None and not self.sees_hangup_requests:
                verdict = "abandon"
        if verdict == "abandon":
            self._abandon(call, hold, ts)
        else:
            self._time_out(call, hold, ts)

    def timed_out(self, e: ev.CallerTimedOut) -> None:
        """A known timeout (the queue_log's EXITWITHTIMEOUT): no window to wait."""
        self._settle(e.uid, None)
        call = self.calls.get(e.uid)
        if call is None or call.status != QUEUED or call.queue != e.queue:
            return
        self._time_out(call, e.hold if e.hold is not None else whole(e.ts - (call.entered or e.ts)), e.ts)

    def _time_out(self, call: Call, hold: int, ts: float) -> None:
        self.tally.timeout(call.day, call.queue)
        call.hold = hold
        call.left = False
        self.calls.set_status(call, NA, ts, duration=hold)

    def ended_unseen(self, call: Call, hold: int, talk: int, ts: float) -> None:
        """A waiting caller answered and finished while we were not listening
        (known from the PBX's counters): both lines written, seconds as given
        (estimates), no agent (which one took it is not known)."""
        self._hanging_up.discard(call.id)
        self.tally.answer(call.day, call.queue, hold)
        call.hold = hold
        call.answered = ts - talk
        call.left = False
        self.calls.set_status(call, INCALL, ts - talk, duration=hold)
        self.tally.complete(call.day, call.queue, talk)
        self.calls.set_status(call, HANGUP, ts, duration=talk)

    def timed_out_unseen(self, call: Call, ts: float) -> None:
        """A waiting caller who left its queue unanswered while we were not
        listening and is still alive in the dialplan (known from the PBX's
        channels and counters): a timeout, its wait taken up to ``ts`` (an
        upper bound: when it left is not known)."""
        self._hanging_up.discard(call.id)
        self._time_out(call, whole(ts - (call.entered or ts)), ts)

    def _abandon(self, call: Call, hold: int, ts: float) -> None:
        self._hanging_up.discard(call.id)
        self.tally.abandon(call.day, call.queue, hold)
        call.hold = hold
        self.calls.set_status(call, ABANDON, ts, duration=hold)

    # ------------------------------------------------------------ agent and call

    def connected(self, e: ev.AgentConnected) -> None:
        if self.calls.ended(e.uid) and not self.calls.may_enter(e.uid):
            return
        agent = self.roster.find(e.member, e.interface)
        agentid = agent.agentid if agent else e.member or e.interface
        if agent is None:
            # E.g. the agent logged out (022) while its phone rang: Asterisk
            # still connects the call, so it is answered and must be counted.
            log.info("AgentConnect for member {a} not logged in; counting the call", a=agentid)
        existing = self.calls.get(e.uid)
        if existing is not None and existing.status == INCALL:
            return  # duplicate
        call = self.calls.get_or_create(e.uid, e.callerid, e.channel, e.ts)
        if e.callername and not call.callername:
            call.callername = e.callername
        self.answer(call, agent, e.queue, e.hold, e.ts, agentid)
        early = self._early_completes.pop((e.uid, e.queue), None)
        if early is not None:
            conn = self.switchboard.get(e.uid)
            if conn is not None:
                self._finish(conn, early)

    def answer(
        self,
        call: Call,
        agent: Agent | None,
        queue: str,
        hold: int | None,
        ts: float,
        agentid: str = "",
    ) -> None:
        if call.status != QUEUED:
            # Its queue entry was never seen: it entered HoldTime seconds ago.
            self.enter_queue(call, queue, ts - (hold or 0))
        if hold is None:
            hold = whole(ts - (call.entered or ts))
        self._hanging_up.discard(call.id)
        self.tally.answer(call.day, call.queue, hold)
        call.hold = hold
        call.answered = ts
        agentid = agent.agentid if agent is not None else agentid
        call.agent = agentid
        call.left = False
        self.calls.set_status(call, INCALL, ts, duration=hold)
        self.switchboard.open(call.id, agentid, call.queue, ts)
        if agent is not None:
            agent.calls_taken += 1  # counted when answered, as app_queue's own CallsTaken is not
            self.roster.set_call(agent, call.id, call.queue)
            self.roster.refresh(agent, ts)

    def completed(self, e: ev.AgentCompleted) -> None:
        conn = self.switchboard.get(e.uid) if e.uid else None
        if conn is not None and conn.queue != e.queue:
            conn = None  # the same caller's call in another queue (gotcha 21)
        if conn is None:
            # Channel fields missing: the agent's current connection is the one.
            agent = self.roster.find(e.member, e.interface)
            if agent is None:
                # Removed from the queue mid-call (022, QueueRemove): its connection lives on.
                conn = self.switchboard.of_agent({e.member, e.interface} - {""})
            elif agent.call:
                conn = self.switchboard.get(agent.call)
            else:
                if agent.call == "":
                    # INCALL on a call we could not identify: that call is over.
                    self.roster.set_call(agent, None)
                    self.roster.refresh(agent, e.ts)
                elif e.uid and not self.calls.ended(e.uid):
                    # Before its AgentConnect (out of order): finish it right after.
                    self._remember(self._early_completes, (e.uid, e.queue), e)
                return
            if conn is None or conn.queue != e.queue:
                return
        self._finish(conn, e)

    def _finish(self, conn: Connection, e: ev.AgentCompleted) -> None:
        talk = e.talk if e.talk is not None else whole(e.ts - conn.since)
        self.complete(conn, talk, e.ts)
        if e.transfer:
            self.calls.mark_transferred(conn.id)
            held = self._held_joins.pop(conn.id, None)
            if held is not None:
                self.joined(held)

    def complete(self, conn: Connection, talk: int | None, ts: float) -> None:
        call = self.calls.get(conn.id)
        if talk is None:
            talk = whole(ts - conn.since)
        self.switchboard.close(conn)
        day = call.day if call is not None else self.tally.book.day
        self.tally.complete(day, conn.queue, talk)
        agent = self.roster.get(conn.agentid)
        if agent is not None:
            agent.talk_time += talk
            if agent.call == conn.id:
                self.roster.set_call(agent, None)
                self._wrap_up(agent, conn.queue, ts)
            self.roster.refresh(agent, ts)
        if call is not None:
            grace = self._grace.pop(call.id, None)
            if grace is not None and grace.active():
                grace.cancel()
            self.calls.set_status(call, HANGUP, ts, duration=talk)

    def _wrap_up(self, agent: Agent, queue: str, ts: float) -> None:
        """app_queue's ``update_queue``: ``lastcall`` is the whole second the call
        ended, and the member is not rung while ``now - lastcall < wrapup``."""
        agent.last_call = float(int(ts))
        m = agent.queues.get(queue)
        wrapup = (m.wrapup if m is not None else 0) or self.wrapup_times.get(
            queue, self.wrapup_default
        )
        agent.wrapup_until = agent.last_call + wrapup if wrapup else 0.0
        old = self._wrapups.pop(agent.agentid, None)
        if old is not None and old.active():
            old.cancel()
        if wrapup:
            delay = max(0.0, agent.wrapup_until - self.clock.seconds())
            self._wrapups[agent.agentid] = self.clock.callLater(
                delay, self._wrap_up_over, agent.agentid
            )

    def _wrap_up_over(self, agentid: str) -> None:
        """Available again (STATS ``agents_available``); nothing shown on the agent changes."""
        self._wrapups.pop(agentid, None)
        agent = self.roster.get(agentid)
        if agent is not None:
            now = self.clock.seconds()
            self._transact(now, lambda: self.roster.refresh(agent, max(now, agent.wrapup_until), False))

    def wrap_up_since(self, agent: Agent, queue: str, ended: float) -> None:
        """A call of the agent ended at ``ended`` while we were not listening (the
        PBX's LastCall, at a reconcile): its wrap-up runs from then, as app_queue's."""
        self._wrap_up(agent, queue, ended)

    def resume_wrap_ups(self) -> None:
        """After a restore: each wrap-up still running (the saved ``wrapup_until``)
        gets its timer back, so the agent is available again when it ends."""
        for timer in self._wrapups.values():
            if timer.active():
                timer.cancel()
        self._wrapups.clear()
        now = self.clock.seconds()
        for agent in self.roster.agents.values():
            if agent.call is None and agent.wrapup_until > now:
                self._wrapups[agent.agentid] = self.clock.callLater(
                    agent.wrapup_until - now, self._wrap_up_over, agent.agentid
                )

    # ------------------------------------------------------------ ringing

    def ringing(self, e: ev.AgentRinging) -> None:
        # Only a caller we know waits: its leaving the queue is what ends the ring.
        call = self.calls.get(e.uid)
        agent = self.roster.find(e.member, e.interface)
        if agent is not None and call is not None and call.status == QUEUED:
            if self.roster.ring(agent, e.uid):
                self.roster.refresh(agent, e.ts)

    def ring_stopped(self, e: ev.AgentRingStopped) -> None:
        agent = self.roster.find(e.member, e.interface)
        if agent is not None and self.roster.stop_ring(agent, e.uid):
            self.roster.refresh(agent, e.ts)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _remember(memory: OrderedDict, key: object, value: object) -> None:
        memory[key] = value
        while len(memory) > ORDER_MEMORY:
            memory.popitem(last=False)

    def expire_ivr(self, older_than: float, ts: float) -> int:
        """End NA calls (announced, never hung up) older than ``older_than``."""
        stale = [
            c for c in list(self.calls.calls.values()) if c.status == NA and c.since < older_than
        ]
        for call in stale:
            self.calls.set_status(call, ABANDON, ts)
        return len(stale)


__all__ = ["COMPLETE_GRACE", "CallFlow", "NEW"]
