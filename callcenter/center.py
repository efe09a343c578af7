"""The Callcenter: routes the PBX's events to the state owners, one change at a time.

translate (``callcenter.ami.events``: AMI message → validated domain event)
→ apply (``callcenter.core``: agents, calls, connections, and the queue-call
rules in ``flow``) → count (``callcenter.core.counting``) → one ``Changes``
per event, published to the adapters (dashboard, Redis, report).

This module holds no rule of its own: it wires the owners, routes each event
type to the owner that applies it, runs the timers (business day, stale IVR
callers), and drives the resync with the PBX.  It never reads AMI headers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from callcenter.ami import events as ev
from callcenter.ami.message import Message
from callcenter.core.agents import Roster
from callcenter.core.calls import CallBook
from callcenter.core.changes import Changes, Tracker
from callcenter.core.connections import Switchboard
from callcenter.core.counting import PAST_DAYS, Tally
from callcenter.core.flow import COMPLETE_GRACE, CallFlow
from callcenter.core.members import MemberRules
from callcenter.core.pause_reasons import PauseReasons, UnknownReason
from callcenter.core.pbx_counters import MAX_UNSEEN, Baseline, PbxCounters
from callcenter.core.reconcile import Reconciler
from callcenter.core.resync import ActionSender, Resync
from callcenter.core.views import connect_json, snapshot_objects, stats_object
from callcenter.kpi import BusinessDay, DayBook
from callcenter.model import AVAIL, INCALL, LOGGEDIN, Agent, Call, Connection

log = Logger()

MAX_REASON = ev.MAX_REASON
#: Callers announced by the dialplan (CALLER) whose hang-up never came are
#: closed after this long in the IVR, and at the next reconcile.
IVR_MAX_AGE = 4 * 3600.0
IVR_SWEEP_EVERY = 300.0


_CHANNEL_EVENTS = (ev.CallerHungUp, ev.HangupRequested)


class UnknownAgent(LookupError):
    def __init__(self, agentid: str) -> None:
        super().__init__(f"unknown agent {agentid}")
        self.agentid = agentid

    def __str__(self) -> str:
        return str(self.args[0])


class NotConnected(RuntimeError):
    """No AMI connection to send a command on."""


class Callcenter:
    def __init__(
        self,
        clock: IReactorTime,
        *,
        sla: int = 10,
        business_day: BusinessDay | None = None,
        ivr_max_age: float = IVR_MAX_AGE,
        pause_reasons: PauseReasons | None = None,
        wrapup_default: int = 0,
        wrapup_times: dict[str, int] | None = None,
        agent_directory: dict[str, tuple[str, str]] | None = None,
        counters_max_unseen: int = MAX_UNSEEN,
    ) -> None:
        """``wrapup_default``/``wrapup_times``: queues.conf's wrapuptime (seconds;
        per queue), which QueueStatus does not report; a member's own Wrapuptime
        wins.  ``agent_directory``: agent id -> (name, team), from --agents."""
        self.clock = clock
        self.sla = sla
        self.pause_reasons = pause_reasons or PauseReasons()
        self.business_day = business_day or BusinessDay()
        self.ivr_max_age = ivr_max_age
        self.tracker = Tracker(self._connection_of, self._connect_json)
        self.tally = Tally(self.business_day, clock.seconds(), self.tracker, sla)
        self.roster = Roster(self.tracker, self.pause_reasons)
        self.roster.directory = dict(agent_directory or {})
        self.callbook = CallBook(self.tracker)
        self.callbook.on_unqueue = self.roster.call_stops_ringing
        self.switchboard = Switchboard(self.tracker)
        self.flow = CallFlow(
            clock, self.tally, self.roster, self.callbook, self.switchboard, self._transact
        )
        self.flow.wrapup_default = wrapup_default
        self.flow.wrapup_times = dict(wrapup_times or {})
        self.members = MemberRules(self.roster, self.flow)
        self.pbx_counters = PbxCounters(
            self.tally,
            self.flow.ended_unseen,
            self.flow.caller_gone,
            self.flow.timed_out_unseen,
            counters_max_unseen,
        )
        self.reconciler = Reconciler(self.flow, self.pbx_counters)
        self.resyncer = Resync(clock, self._reconcile_snapshot, self._track, self._untrack)
        self._subscribers: list[Callable[[Changes], None]] = []
        self._timers: dict[str, IDelayedCall] = {}
        # When today's business day ends (our clock): checked on every event, so
        # a float compare rather than a calendar computation.
        self._day_ends = self.business_day.next_start(clock.seconds())
        self._routes: dict[type, Callable[[Any], None]] = {
            ev.CallerAnnounced: self.flow.caller_announced,
            ev.CallerHungUp: self.flow.caller_hung_up,
            ev.HangupRequested: self.flow.hangup_requested,
            ev.CallerJoined: self.flow.joined,
            ev.CallerLeft: self.flow.left,
            ev.CallerAbandoned: self.flow.abandoned,
            ev.CallerTimedOut: self.flow.timed_out,
            ev.AgentConnected: self.flow.connected,
            ev.AgentCompleted: self.flow.completed,
            ev.AgentRinging: self.flow.ringing,
            ev.AgentRingStopped: self.flow.ring_stopped,
            ev.MemberChanged: self.members.changed,
            ev.MemberRemoved: self.members.removed,
            ev.AgentLoggedIn: self._logged_in,
            ev.AgentLoggedOut: self.members.logged_out,
        }
        # Queue-log catch-up (callcenter/queuelog/catchup.py): while it replays
        # what AMI missed, live events and reconciles wait here, in order.
        self._held: deque[tuple[Callable[..., Any], tuple[Any, ...]]] | None = None
        self._held_events: list[ev.Event] = []
        self._replaying = False
        self._track_since = 0.0  # when the resync in flight asked for its snapshot
        #: Called inside each applied event's transaction (the catch-up's cursor).
        self.on_applied: Callable[[ev.Event], None] | None = None

    # ------------------------------------------------------------ state (read-only views)

    @property
    def agents(self) -> dict[str, Agent]:
        return self.roster.agents

    @property
    def calls(self) -> dict[str, Call]:
        return self.callbook.calls

    @property
    def connections(self) -> dict[str, Connection]:
        return self.switchboard.connections

    @property
    def book(self) -> DayBook:
        return self.tally.book

    @property
    def past(self) -> dict[str, DayBook]:
        return self.tally.past

    @property
    def ami(self) -> ActionSender | None:
        return self.resyncer.ami

    @ami.setter
    def ami(self, client: ActionSender | None) -> None:
        self.resyncer.ami = client

    # ------------------------------------------------------------ wiring

    def attach(self, client: Any) -> None:
        """Listen to an AMIClient's events and resync after each (re)connect."""
        self.ami = client
        for name in ev.TRANSLATORS:
            client.add_listener(name, self.handle_event)
        client.add_connect_hook(self.resync)

    def subscribe(self, fn: Callable[[Changes], None]) -> Callable[[], None]:
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    def start(self) -> None:
        """Begin the timers (call once the reactor runs)."""
        self._schedule_roll()
        self._timers["ivr"] = self.clock.callLater(IVR_SWEEP_EVERY, self._sweep_ivr)

    def stop(self) -> None:
        self.flow.stop()
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()

    def restore(
        self,
        agents: Iterable[Agent],
        calls: Iterable[Call],
        connections: Iterable[Connection],
        books: Iterable[DayBook] = (),
        counters: Baseline | None = None,
    ) -> None:
        """Load persisted state (before the first AMI connect; reconcile follows).

        Inconsistent records (a connection whose agent or call is missing) are
        dropped with a log line rather than trusted.
        """
        self.roster.restore(agents)
        for agent in self.agents.values():
            known = self.roster.directory.get(agent.agentid)
            if known is not None:
                agent.name, agent.team = known  # --agents may have changed since
        self.callbook.restore(calls)
        kept = []
        for conn in connections:
            agent, call = self.agents.get(conn.agentid), self.calls.get(conn.id)
            if agent is None or call is None or call.status != INCALL:
                log.warn("dropped stored connection {id}: its agent or call is gone", id=conn.id)
                continue
            kept.append(conn)
        self.switchboard.restore(kept)
        for agent in self.agents.values():
            if agent.call and agent.call not in self.connections:
                agent.call, agent.call_queue = None, ""
                agent.status = agent.derived_status()
        self.roster.rebuild_available(self.clock.seconds())
        self.flow.resume_wrap_ups()
        self.tally.restore(list(books))
        self.pbx_counters.restore(counters)

    def set_agent_directory(self, directory: dict[str, tuple[str, str]]) -> None:
        """--agents reread (SIGHUP): the new names and teams win from now on;
        every agent whose name or team changed is published (an AGENT).  One
        the file no longer lists loses its team and keeps its name until its
        phone sends one (at the next login)."""
        self._transact(self.clock.seconds(), self._set_agent_directory, dict(directory))

    def _set_agent_directory(self, directory: dict[str, tuple[str, str]]) -> None:
        old, self.roster.directory = self.roster.directory, directory
        now = self.clock.seconds()
        for agent in self.roster:
            known = directory.get(agent.agentid)
            if known is None and agent.agentid in old:
                known = (agent.name, "")
            if known is not None and (agent.name, agent.team) != known:
                agent.name, agent.team = known
                self.roster.refresh(agent, now)

    def publish_stats(self) -> None:
        """Tell subscribers the STATS now (after counters were replaced by a merge)."""
        self._transact(self.clock.seconds(), lambda: self.tracker.day(self.book.day))

    # ------------------------------------------------------------ views

    def snapshot(self) -> list[dict[str, Any]]:
        return snapshot_objects(self)

    def live_entities(self) -> tuple[Iterable[Agent], Iterable[Call]]:
        """Every agent and call, unrendered (what a dashboard hub indexes at its start)."""
        return self.agents.values(), self.calls.values()

    def stats(self) -> dict[str, Any]:
        return stats_object(self, self.clock.seconds())

    def _connect_json(self, conn: Connection, status: str = INCALL) -> dict[str, Any]:
        return connect_json(self, conn, status)

    def _connection_of(self, uid: str) -> Connection | None:
        return self.switchboard.get(uid)

    # ------------------------------------------------------------ commands

    def pause(self, agentid: str, reason: str = "") -> defer.Deferred:
        return self._queue_pause(agentid, True, reason)

    def unpause(self, agentid: str) -> defer.Deferred:
        return self._queue_pause(agentid, False, "")

    def _queue_pause(self, agentid: str, paused: bool, reason: str) -> defer.Deferred:
        agent = self.agents.get(agentid)
        if agent is None:
            return defer.fail(UnknownAgent(agentid))
        if len(reason) > MAX_REASON or not reason.isprintable():
            return defer.fail(ValueError("pause reason must be at most 64 printable characters"))
        if paused:
            try:
                reason = self.pause_reasons.check(reason)  # the configured spelling
            except UnknownReason as e:
                return defer.fail(e)
        if self.ami is None:
            return defer.fail(NotConnected("not connected to Asterisk"))
        headers = {"Interface": agent.interface, "Paused": "true" if paused else "false"}
        if len(agent.queues) == 1:
            headers["Queue"] = next(iter(agent.queues))
        if reason:
            headers["Reason"] = reason
        d = defer.maybeDeferred(self.ami.action, "QueuePause", **headers)
        d.addCallback(lambda _response: None)
        return d

    # ------------------------------------------------------------ events

    def handle_event(self, msg: Message) -> None:
        """One AMI message: translated (or dropped with a log line), then applied."""
        if not self.flow.sees_hangup_requests and ev.shows_call_class(msg):
            # Known before the first HangupRequest (a session just started): a
            # timeout's QueueCallerAbandon is followed by MusicOnHoldStop at once.
            self.flow.sees_hangup_requests = True
        # Once the session has shown it sends HangupRequests (the flag the
        # abandon/timeout rule needs), hang-ups of channels that are no call of
        # ours are dropped at translation, unread; not while events are held
        # for the catch-up, which may yet make their call known.
        calls = (
            self.callbook.calls
            if self.flow.sees_hangup_requests and self._held is None
            else None
        )
        event = ev.translate(msg, self.clock.seconds(), calls)
        if event is not None:
            self.apply(event)

    def apply(self, event: ev.Event) -> None:
        if self._held is not None and not self._replaying:
            self._held.append((self.apply, (event,)))
            self._held_events.append(event)
            return
        kind = type(event)
        if kind in _CHANNEL_EVENTS and event.uid not in self.callbook.calls:  # type: ignore[union-attr]
            # Most Hangup/HangupRequest events are agent legs and IVR halves:
            # no call of ours, nothing to change, no transaction to open.
            if kind is ev.HangupRequested:
                self.flow.sees_hangup_requests = True
            return
        route = self._routes.get(kind)
        if route is not None:
            if self.on_applied is None:
                self._transact(event.ts, route, event)
            else:
                self._transact(event.ts, self._applied, route, event)

    def _applied(self, route: Callable[[Any], None], event: ev.Event) -> None:
        route(event)
        if self.on_applied is not None:
            self.on_applied(event)

    # ------------------------------------------------------------ catch-up gate

    @property
    def holding(self) -> bool:
        return self._held is not None

    @property
    def held_events(self) -> list[ev.Event]:
        """Live events waiting for the catch-up, in arrival order (read-only)."""
        return self._held_events

    def hold(self) -> None:
        """Keep live events and reconciles back until ``release`` (the queue-log
        catch-up replays what happened before them first)."""
        if self._held is None:
            self._held = deque()
            self._held_events = []

    def release(self) -> None:
        """Apply what was held, in arrival order.  Events held before a
        reconcile count as changed while its snapshot was in flight (as they
        would have without the hold), so it does not undo them."""
        held, self._held = self._held, None
        self._held_events = []
        if not held:
            return
        pending = [args[1] for fn, args in held if fn == self._reconcile_now]
        saved = self.tracker.resync_touched
        for fn, args in held:
            if fn == self._reconcile_now:
                pending.pop(0)
                self.tracker.resync_touched = saved
                fn(*args)
            else:
                if pending:
                    self.tracker.resync_touched = pending[0]
                fn(*args)
        self.tracker.resync_touched = saved

    def apply_replayed(self, event: ev.Event) -> None:
        """An event rebuilt from the queue log: applied now, ahead of anything
        held.  One from before the resync in flight asked for its snapshot is
        older than it (not tracked); a later one (whole seconds, so within a
        second of it) counts as newer, so the reconcile does not undo it."""
        saved = self.tracker.resync_touched
        if saved is not None and event.ts < int(self._track_since) - 1:
            self.tracker.resync_touched = None  # older than the snapshot: it may correct it
        self._replaying = True
        try:
            self.apply(event)
        finally:
            self._replaying = False
            self.tracker.resync_touched = saved

    def _transact(self, ts: float, change: Callable[..., None], *args: Any) -> None:
        """Run one change and publish what it changed, once."""
        self.tracker.begin(ts)
        try:
            # The day turns by our clock, never by a PBX timestamp (a bad one must
            # not close the day); this check only backs up a late roll timer.
            now = self.clock.seconds()
            if now >= self._day_ends:
                day = self.business_day.day_of(now)
                if day > self.book.day:
                    self._roll_to(day)
                self._day_ends = self.business_day.next_start(now)
            change(*args)
        except Exception:
            log.failure("error applying a change; state kept as it was")
        finally:
            self._commit()

    def _commit(self) -> None:
        ch = self.tracker.end()
        if ch is None:
            return
        ch.objects = [render() for render in ch._render.values()]
        if ch._stats_dirty:
            ch._stats_fn = self.stats  # built when somebody reads it, at most once
        if not ch:
            return
        for fn in list(self._subscribers):
            try:
                fn(ch)
            except Exception:
                log.failure("subscriber {fn!r} failed on a change", fn=fn)

    def _logged_in(self, e: ev.AgentLoggedIn) -> None:
        if self.members.logged_in_known(e):
            return
        # The member events did not reach us: ask the PBX rather than guess the queue.
        log.info("LOGGEDIN for agent {a} we had not seen join a queue: resyncing", a=e.agentid)
        self.request_resync()

    # ------------------------------------------------------------ timers

    def _roll_to(self, day: str) -> None:
        self.tally.roll_to(day)
        self.roster.reset_day_counters()  # agents' own day counters restart with the day

    def _schedule_roll(self) -> None:
        now = self.clock.seconds()
        delay = max(1.0, self.business_day.next_start(now) - now)
        self._timers["roll"] = self.clock.callLater(delay, self._roll_timer)

    def _roll_timer(self) -> None:
        self._transact(self.clock.seconds(), lambda: None)
        self._schedule_roll()

    def _sweep_ivr(self) -> None:
        now = self.clock.seconds()
        self._transact(now, lambda: self._expire_ivr(now))
        self._timers["ivr"] = self.clock.callLater(IVR_SWEEP_EVERY, self._sweep_ivr)

    def _expire_ivr(self, now: float) -> None:
        n = self.flow.expire_ivr(now - self.ivr_max_age, now)
        if n:
            log.info("closed {n} callers left in the IVR for over {h:g} h", n=n, h=self.ivr_max_age / 3600)

    # ------------------------------------------------------------ reconcile

    def request_resync(self) -> None:
        if self.ami is not None:
            self.resyncer.request()

    def resync(self) -> defer.Deferred:
        """Ask the PBX for the truth and reconcile (after every AMI login)."""
        return self.resyncer.request()

    def when_reconciled(self) -> defer.Deferred:
        """Fires once the next resync with the PBX has been applied (readiness)."""
        return self.resyncer.when_applied()

    def _track(self) -> set[str]:
        self._track_since = self.clock.seconds()
        self.tracker.resync_touched = set()
        return self.tracker.resync_touched

    def _untrack(self) -> None:
        self.tracker.resync_touched = None

    def _reconcile_snapshot(self, snap: ev.PbxSnapshot, skip: set[str]) -> defer.Deferred | None:
        if self._held is not None:
            done: defer.Deferred[None] = defer.Deferred()
            # The live set: what the catch-up applies meanwhile is tracked into it.
            self._held.append((self._reconcile_now, (snap, skip, done)))
            return done  # the resync counts as applied once it really is
        self._reconcile_now(snap, set(skip))
        return None

    def _reconcile_now(
        self, snap: ev.PbxSnapshot, skip: set[str], done: defer.Deferred | None = None
    ) -> None:
        ts = self.clock.seconds()
        self._transact(ts, lambda: self.reconciler.apply(snap, ts, set(skip)))
        if done is not None:
            done.callback(None)

    def reconcile(
        self,
        items: Iterable[Message],
        channels: Iterable[Message] | None = None,
        skip: set[str] | None = None,
    ) -> None:
        """Bring state in line with a QueueStatus answer (and CoreShowChannels)."""
        self._reconcile_snapshot(ev.pbx_snapshot(items, channels), skip or set())


__all__ = [
    "AVAIL",
    "COMPLETE_GRACE",
    "Callcenter",
    "Changes",
    "LOGGEDIN",
    "NotConnected",
    "PAST_DAYS",
    "UnknownAgent",
    "UnknownReason",
]
