"""The Callcenter: the one object that owns the call center's live state.

It is driven by AMI events (``handle_event``) and by the PBX's truth after
every (re)connect (``reconcile``), and it tells its subscribers what changed,
once per event, as a ``Changes``.  The AMI client, the dashboard, the report
file and Redis are adapters around it; none of them changes state directly.

Rules that keep it right on a real Asterisk (see the traces' REFERENCE.md):

- a call is the caller channel's Uniqueid (the ``;2`` half of a Local
  channel), never parsed as a number;
- an agent is the member's ``MemberName`` (falling back to its interface);
- ``AgentComplete`` is matched to the agent's connection when it lacks the
  caller's fields;
- events for calls that already ended and repeated pause events change
  nothing, so nothing is counted twice;
- KPI seconds come from Asterisk's ``HoldTime``/``TalkTime``; status times
  from the events' ``Timestamp`` header when present.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from callcenter.ami.message import Message
from callcenter.ami.names import EVENTS
from callcenter.kpi import BusinessDay, Counters, DayBook, kpi_view
from callcenter.model import (
    ABANDON,
    AVAIL,
    DEVICE_STATES,
    HANGUP,
    INCALL,
    LOGGEDIN,
    LOGGEDOUT,
    NA,
    PAUSED,
    QUEUED,
    Agent,
    Call,
    Connection,
    Membership,
)
from callcenter.report import Transition

log = Logger()

# How long to wait for AgentComplete after the caller hung up during a call
# before closing the call from our own clock (Asterisk sends it within ms).
COMPLETE_GRACE = 3.0
# How many ended call ids to remember, so late events for them are ignored.
ENDED_MEMORY = 10_000
# How many finished business days keep receiving late counts in memory.
PAST_DAYS = 2
MAX_REASON = 64
_REASON_OK = re.compile(r"^[^\x00-\x1f\x7f]*$")
NEW = ""  # a call created by a queue event in this very event: it had no NA phase
# Final "status" remembered for a call an agent transferred: the caller's channel
# lives on and may enter a queue again (a new queue entry, same Uniqueid).
TRANSFERRED = "transfer"


class UnknownAgent(LookupError):
    def __init__(self, agentid: str) -> None:
        super().__init__(f"unknown agent {agentid}")
        self.agentid = agentid

    def __str__(self) -> str:
        return str(self.args[0])


class NotConnected(RuntimeError):
    """No AMI connection to send a command on."""


class ActionSender(Protocol):
    def action(self, name: str, **headers: str) -> defer.Deferred: ...

    def list_action(self, name: str, **headers: str) -> defer.Deferred: ...


class Changes:
    """What one AMI event (or one reconcile) changed.

    ``objects``: the dashboard objects (AGENT/CALL/CONNECT) changed, in order;
    ``stats``: the new STATS object when a KPI or a count changed;
    ``transitions``: report lines; ``agents``/``calls``/``connections``: ids
    touched (for persistence: look the id up, absent means removed);
    ``days``: business days whose counters changed.
    """

    __slots__ = (
        "ts",
        "objects",
        "stats",
        "transitions",
        "agents",
        "calls",
        "connections",
        "days",
        "rolled",
        "_render",
        "_stats_dirty",
    )

    def __init__(self, ts: float) -> None:
        self.ts = ts
        self.objects: list[dict[str, Any]] = []
        self.stats: dict[str, Any] | None = None
        self.transitions: list[Transition] = []
        self.agents: set[str] = set()
        self.calls: set[str] = set()
        self.connections: set[str] = set()
        self.days: set[str] = set()
        self.rolled: list[DayBook] = []  # finished days, when the business day turned
        self._render: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {}
        self._stats_dirty = False

    def __bool__(self) -> bool:
        return bool(self.objects or self.stats or self.transitions or self.days or self.rolled)


def _int_field(msg: Message, key: str) -> int | None:
    """A whole-seconds field; a bad value is logged and treated as absent, so
    the event still counts with the time measured from our own timestamps."""
    value = msg.get(key)
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        log.warn(
            "{event}: {key} {value!r} is not a whole number of seconds; using event times",
            event=msg.event,
            key=key,
            value=value[:40],
        )
        return None
    return n


def _whole(seconds: float) -> int:
    """Elapsed whole seconds, immune to float noise (5.9999999 is 6)."""
    return max(0, int(seconds + 1e-6))


def _hms(value: str | None) -> int:
    """CoreShowChannel's ``Duration: HH:MM:SS`` in seconds (0 when unreadable)."""
    try:
        h, m, sec = (int(x) for x in (value or "").split(":"))
        return h * 3600 + m * 60 + sec
    except ValueError:
        return 0


def _flag(msg: Message, key: str) -> bool:
    return (msg.get(key) or "").strip().lower() in ("1", "true", "yes")


class Callcenter:
    def __init__(
        self,
        clock: IReactorTime,
        *,
        sla: int = 10,
        business_day: BusinessDay | None = None,
    ) -> None:
        self.clock = clock
        self.sla = sla
        self.business_day = business_day or BusinessDay()
        self.agents: dict[str, Agent] = {}
        self.calls: dict[str, Call] = {}
        self.connections: dict[str, Connection] = {}
        self._by_interface: dict[str, str] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()  # call id -> final status
        self.book = DayBook(self.business_day.day_of(clock.seconds()))
        self.past: dict[str, DayBook] = {}
        # Live per-queue indexes, so STATS costs O(queues + waiting), not O(everything).
        self._queue_agents: dict[str, set[str]] = {}
        self._queue_calls: dict[str, set[str]] = {}
        self._waiting: dict[str, dict[str, float]] = {}
        self._queue_conns: dict[str, set[str]] = {}
        self._subscribers: list[Callable[[Changes], None]] = []
        self._changes: Changes | None = None
        self._grace: dict[str, IDelayedCall] = {}
        self._roll_call: IDelayedCall | None = None
        self._touched_during_resync: set[str] | None = None
        self._resync_pending = False
        self.ami: ActionSender | None = None
        self._handlers: dict[str, Callable[[Message, float], None]] = {
            "UserEvent": self._on_user_event,
            "QueueCallerJoin": self._on_join,
            "QueueCallerLeave": self._on_leave,
            "QueueCallerAbandon": self._on_abandon,
            "AgentConnect": self._on_connect,
            "AgentComplete": self._on_complete,
            "QueueMemberAdded": self._on_member,
            "QueueMemberPause": self._on_member,
            "QueueMemberPaused": self._on_member,
            "QueueMemberStatus": self._on_member,
            "QueueMemberRemoved": self._on_member_removed,
            "Hangup": self._on_hangup,
        }
        # AgentCalled / AgentRingNoAnswer change nothing we show (an autopause
        # arrives as its own QueueMemberPause); listened to for completeness.
        self._handlers.update({n: self._ignore for n in EVENTS if n not in self._handlers})

    # ------------------------------------------------------------------ wiring

    def attach(self, client: Any) -> None:
        """Listen to an AMIClient's events and resync after each (re)connect."""
        self.ami = client
        for name in self._handlers:
            client.add_listener(name, self.handle_event)
        client.add_connect_hook(self.resync)

    def subscribe(self, fn: Callable[[Changes], None]) -> Callable[[], None]:
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    def start(self) -> None:
        """Begin the business-day timer (call once the reactor runs)."""
        self._schedule_roll()

    def stop(self) -> None:
        for call in list(self._grace.values()) + ([self._roll_call] if self._roll_call else []):
            if call.active():
                call.cancel()
        self._grace.clear()
        self._roll_call = None

    def restore(
        self,
        agents: Iterable[Agent],
        calls: Iterable[Call],
        connections: Iterable[Connection],
        books: Iterable[DayBook] = (),
    ) -> None:
        """Load persisted state (before the first AMI connect; reconcile follows).

        Inconsistent records (a connection whose agent or call is missing) are
        dropped with a log line rather than trusted.
        """
        self.agents.clear()
        self.calls.clear()
        self.connections.clear()
        self._by_interface.clear()
        self._queue_agents.clear()
        self._queue_calls.clear()
        self._waiting.clear()
        self._queue_conns.clear()
        for agent in agents:
            if not agent.queues or agent.status == LOGGEDOUT:
                continue
            self.agents[agent.agentid] = agent
            if agent.interface:
                self._by_interface[agent.interface] = agent.agentid
            for q in agent.queues:
                self._queue_agents.setdefault(q, set()).add(agent.agentid)
        for call in calls:
            if call.status in (HANGUP, ABANDON):
                continue
            self.calls[call.id] = call
            if call.queue:
                self._queue_calls.setdefault(call.queue, set()).add(call.id)
            if call.status == QUEUED and not call.left:
                self._waiting.setdefault(call.queue, {})[call.id] = call.entered or call.since
        for conn in connections:
            agent, call = self.agents.get(conn.agentid), self.calls.get(conn.id)
            if agent is None or call is None or call.status != INCALL:
                log.warn("dropped stored connection {id}: its agent or call is gone", id=conn.id)
                continue
            self.connections[conn.id] = conn
            self._queue_conns.setdefault(conn.queue, set()).add(conn.id)
        for agent in self.agents.values():
            if agent.call and agent.call not in self.connections:
                agent.call, agent.call_queue = None, ""
                agent.status = agent.derived_status()
        today = self.book.day
        for book in books:
            if book.day == today:
                self.book = book
            elif book.day < today:
                self.past[book.day] = book
        for stale in sorted(self.past)[:-PAST_DAYS]:
            del self.past[stale]

    def publish_stats(self) -> None:
        """Tell subscribers the STATS now (after counters were replaced by a merge)."""
        self._begin(self.clock.seconds())
        self._ch._stats_dirty = True
        self._ch.days.add(self.book.day)
        self._commit()

    # ------------------------------------------------------------------ views

    def snapshot(self) -> list[dict[str, Any]]:
        out = [self.stats()]
        out.extend(a.to_json() for a in self.agents.values())
        out.extend(c.to_json() for c in self.calls.values())
        out.extend(self._connect_json(c) for c in self.connections.values())
        return out

    def stats(self) -> dict[str, Any]:
        now = self.clock.seconds()
        queues = (
            set(self.book.queues)
            | set(self._queue_agents)
            | set(self._queue_calls)
            | set(self._waiting)
        )
        per_queue: dict[str, dict[str, Any]] = {}
        oldest_all: float | None = None
        waiting_all = 0
        for q in sorted(queues):
            waiting = self._waiting.get(q) or {}
            oldest = min(waiting.values()) if waiting else None
            if oldest is not None and (oldest_all is None or oldest < oldest_all):
                oldest_all = oldest
            waiting_all += len(waiting)
            per_queue[q] = {
                **kpi_view(self.book.queues.get(q) or Counters()),
                "agents_online": len(self._queue_agents.get(q) or ()),
                "calls_online": len(self._queue_calls.get(q) or ()),
                "connections_online": len(self._queue_conns.get(q) or ()),
                "calls_waiting": len(waiting),
                "longest_wait": _whole(now - oldest) if oldest is not None else 0,
            }
        return {
            "type": "STATS",
            "day": self.book.day,
            **kpi_view(self.book.total()),
            "agents_online": len(self.agents),
            "calls_online": len(self.calls),
            "connections_online": len(self.connections),
            "calls_waiting": waiting_all,
            "longest_wait": _whole(now - oldest_all) if oldest_all is not None else 0,
            "sla_seconds": self.sla,
            "queues": per_queue,
        }

    def _connect_json(self, conn: Connection, status: str = INCALL) -> dict[str, Any]:
        return conn.to_json(self.agents.get(conn.agentid), self.calls.get(conn.id), status)

    # ------------------------------------------------------------------ commands

    def pause(self, agentid: str, reason: str = "") -> defer.Deferred:
        return self._queue_pause(agentid, True, reason)

    def unpause(self, agentid: str) -> defer.Deferred:
        return self._queue_pause(agentid, False, "")

    def _queue_pause(self, agentid: str, paused: bool, reason: str) -> defer.Deferred:
        agent = self.agents.get(agentid)
        if agent is None:
            return defer.fail(UnknownAgent(agentid))
        if len(reason) > MAX_REASON or not _REASON_OK.match(reason):
            return defer.fail(ValueError("pause reason must be at most 64 printable characters"))
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

    # ------------------------------------------------------------------ event entry

    def handle_event(self, msg: Message) -> None:
        handler = self._handlers.get(msg.event or "")
        if handler is None:
            return
        ts = self._timestamp(msg)
        self._begin(ts)
        try:
            handler(msg, ts)
        except (KeyError, ValueError) as e:
            log.warn("ignored {event}: {err}", event=msg.event, err=e)
        except Exception:
            log.failure("error handling {event}; state kept as before", event=msg.event)
        finally:
            self._commit()

    def _timestamp(self, msg: Message) -> float:
        raw = msg.get("Timestamp")
        if raw:
            try:
                ts = float(raw)
                # A wildly wrong PBX clock must not move statuses years away.
                if abs(ts - self.clock.seconds()) < 86400:
                    return ts
            except ValueError:
                pass
        return self.clock.seconds()

    def _ignore(self, msg: Message, ts: float) -> None:
        return None

    # ------------------------------------------------------------------ change bookkeeping

    def _begin(self, ts: float) -> None:
        self._changes = Changes(ts)
        # The day turns by our clock, never by a PBX timestamp (a bad one must
        # not close the day); this check only backs up a late roll timer.
        day = self.business_day.day_of(self.clock.seconds())
        if day > self.book.day:
            self._roll_to(day)

    def _commit(self) -> None:
        ch, self._changes = self._changes, None
        if ch is None:
            return
        ch.objects = [render() for render in ch._render.values()]
        if ch._stats_dirty:
            ch.stats = self.stats()
        if not ch:
            return
        for fn in list(self._subscribers):
            try:
                fn(ch)
            except Exception:
                log.failure("subscriber {fn!r} failed on a change", fn=fn)

    @property
    def _ch(self) -> Changes:
        assert self._changes is not None, "state changed outside an event"
        return self._changes

    def _touch(self, kind: str, ident: str, to_json: Callable[[], dict[str, Any]], live: bool) -> None:
        """Note a changed entity: rendered at commit while live, frozen now once gone."""
        if live:
            self._ch._render[(kind, ident)] = to_json
        else:
            final = to_json()
            self._ch._render[(kind, ident)] = lambda: final
        if self._touched_during_resync is not None:
            self._touched_during_resync.add(f"{kind.lower()}:{ident}")

    def _touch_agent(self, agent: Agent) -> None:
        self._ch.agents.add(agent.agentid)
        self._touch("AGENT", agent.agentid, agent.to_json, agent.agentid in self.agents)
        if agent.call and agent.call in self.connections:
            self._touch_connection(self.connections[agent.call])

    def _touch_call(self, call: Call) -> None:
        self._ch.calls.add(call.id)
        self._touch("CALL", call.id, call.to_json, call.id in self.calls)
        if call.id in self.connections:
            self._touch_connection(self.connections[call.id])

    def _touch_connection(self, conn: Connection, ended: bool = False) -> None:
        ch = self._ch
        ch.connections.add(conn.id)
        if ended:
            final = self._connect_json(conn, HANGUP)
            ch._render[("CONNECT", conn.id)] = lambda: final
        else:
            ch._render[("CONNECT", conn.id)] = lambda: self._connect_json(conn)

    def _counted(self, day: str) -> DayBook:
        """The book a call's KPIs go to: the business day it entered the queue."""
        self._ch.days.add(day)
        self._ch._stats_dirty = True
        if day == self.book.day or not day:
            return self.book
        book = self.past.get(day)
        if book is None:
            log.warn(
                "no counters kept for day {day}; counting in {today}", day=day, today=self.book.day
            )
            self._ch.days.add(self.book.day)
            return self.book
        return book

    # ------------------------------------------------------------------ business day

    def _roll_to(self, day: str) -> None:
        old = self.book
        self.past[old.day] = old
        for stale in sorted(self.past)[:-PAST_DAYS]:
            del self.past[stale]
        self.book = DayBook(day)
        # Agents' own day counters restart with the day too.
        for agent in self.agents.values():
            if agent.calls_taken or agent.talk_time:
                agent.calls_taken = agent.talk_time = 0
                self._touch_agent(agent)
        ch = self._ch
        ch.rolled.append(old)
        ch.days.update((old.day, day))
        ch._stats_dirty = True
        log.info("business day {old} finished; counting {day}", old=old.day, day=day)

    def _schedule_roll(self) -> None:
        now = self.clock.seconds()
        delay = max(1.0, self.business_day.next_start(now) - now)
        self._roll_call = self.clock.callLater(delay, self._roll_timer)

    def _roll_timer(self) -> None:
        self._begin(self.clock.seconds())
        self._commit()
        self._schedule_roll()

    # ------------------------------------------------------------------ agents

    def _agent_for(self, msg: Message) -> Agent | None:
        name = msg.get("MemberName") or ""
        interface = msg.get("Interface") or msg.get("Location") or ""
        agentid = self._by_interface.get(interface) or name or interface
        return self.agents.get(agentid) if agentid else None

    def _ensure_agent(self, agentid: str, interface: str, ts: float) -> Agent:
        agent = self.agents.get(agentid)
        if agent is None:
            agent = Agent(agentid=agentid, interface=interface, status=LOGGEDOUT, since=ts)
            self.agents[agentid] = agent
        if interface and agent.interface != interface:
            self._by_interface.pop(agent.interface, None)
            agent.interface = interface
        if interface:
            self._by_interface[interface] = agentid
        return agent

    def _refresh_agent(self, agent: Agent, ts: float) -> None:
        """Recompute status from memberships and call; report the status that ended."""
        status = agent.derived_status()
        reason = agent.pause_reason() if status == PAUSED else ""
        if (status, reason) != (agent.status, agent.reason):
            if agent.status != LOGGEDOUT:
                self._ch.transitions.append(
                    Transition(
                        "AGENT",
                        agent.agentid,
                        agent.status,
                        agent.since,
                        max(0, round(ts - agent.since)),
                        agent.since_queue,
                    )
                )
            agent.status, agent.reason, agent.since = status, reason, ts
            agent.since_queue = agent.queue
        if status == LOGGEDOUT:
            self.agents.pop(agent.agentid, None)
            self._by_interface.pop(agent.interface, None)
        self._touch_agent(agent)

    def _set_membership(self, agent: Agent, queue: str, paused: bool, reason: str) -> None:
        m = agent.queues.get(queue)
        if m is None:
            agent.queues[queue] = Membership(paused, reason if paused else "")
            self._queue_agents.setdefault(queue, set()).add(agent.agentid)
            self._ch._stats_dirty = True
        else:
            m.paused, m.reason = paused, reason if paused else ""

    def _drop_membership(self, agent: Agent, queue: str) -> None:
        if agent.queues.pop(queue, None) is not None:
            members = self._queue_agents.get(queue)
            if members is not None:
                members.discard(agent.agentid)
                if not members:
                    del self._queue_agents[queue]
            self._ch._stats_dirty = True

    def _on_member(self, msg: Message, ts: float) -> None:
        queue = msg["Queue"]
        interface = msg.get("Interface") or msg.get("Location") or ""
        agentid = self._by_interface.get(interface) or msg.get("MemberName") or interface
        if not agentid or not queue:
            raise ValueError("member event without MemberName/Interface or Queue")
        paused = _flag(msg, "Paused")
        reason = msg.get("PausedReason") or ""
        new = agentid not in self.agents
        agent = self._ensure_agent(agentid, interface, ts)
        m = agent.queues.get(queue)
        if msg.event == "QueueMemberAdded":
            # Until first made available, a reasonless pause is the login's own: LOGGEDIN.
            agent.fresh_login = new or agent.fresh_login
        elif (paused and reason) or (not paused and m is not None and m.paused):
            agent.fresh_login = False
        if msg.event in ("QueueMemberPause", "QueueMemberPaused"):
            if m is not None and (m.paused, m.reason) == (paused, reason if paused else ""):
                return  # the hangup handler's redundant unpause: nothing changed
        self._set_membership(agent, queue, paused, reason)
        # e.g. UNAVAILABLE: the phone is unregistered, the queue will not ring it.
        agent.device = DEVICE_STATES.get(msg.get("Status") or "", agent.device)
        self._refresh_agent(agent, ts)

    def _on_member_removed(self, msg: Message, ts: float) -> None:
        agent = self._agent_for(msg)
        if agent is None:
            return
        self._drop_membership(agent, msg["Queue"])
        self._refresh_agent(agent, ts)

    def _log_out(self, agent: Agent, ts: float) -> None:
        for queue in list(agent.queues):
            self._drop_membership(agent, queue)
        self._refresh_agent(agent, ts)

    # ------------------------------------------------------------------ UserEvents

    def _on_user_event(self, msg: Message, ts: float) -> None:
        kind = (msg.get("UserEvent") or "").upper()
        if kind == "CALLER":
            uid = msg["Uniqueid"]
            if uid in self.calls or uid in self._ended:
                return
            call = self._call_from(msg, ts)
            call.status = NA  # in the IVR: no queue yet
            self._touch_call(call)
            self._ch._stats_dirty = True
        elif kind == "CALLERHANGUP":
            call = self.calls.get(msg.get("Uniqueid") or "")
            if call is not None:
                self._caller_gone(call, ts)
        elif kind == "LOGGEDIN":
            agentid, agent = self._user_event_agent(msg)
            if agent is None:
                # The member events did not reach us: ask the PBX rather than guess the queue.
                log.info(
                    "LOGGEDIN for agent {a} we had not seen join a queue: resyncing", a=agentid
                )
                self.request_resync()
        elif kind == "LOGGEDOUT":
            _agentid, agent = self._user_event_agent(msg)
            if agent is not None and agent.queues:
                self._log_out(agent, ts)

    def _user_event_agent(self, msg: Message) -> tuple[str, Agent | None]:
        """The dialplan's ``agentid``/``member`` headers (case as written there)."""
        agentid = msg.get_ci("agentid") or ""
        member = msg.get_ci("member") or ""
        return agentid, self.agents.get(self._by_interface.get(member) or agentid)

    # ------------------------------------------------------------------ calls

    def _call_from(self, msg: Message, since: float, uid: str | None = None) -> Call:
        """The live call, or a new one (status NEW) described by ``msg``: a queue
        event without the dialplan's CALLER UserEvent (FreePBX-style), or a
        QueueEntry/CoreShowChannel item for a call we started too late to see."""
        uid = uid or msg["Uniqueid"]
        call = self.calls.get(uid)
        if call is None:
            call = Call(
                id=uid,
                callerid=msg.get("CallerIDNum") or "",
                status=NEW,
                since=since,
                channel=msg.get("Channel") or "",
            )
            self.calls[uid] = call
        return call

    def _set_call_status(
        self,
        call: Call,
        status: str,
        ts: float,
        duration: int | None = None,
        queue: str | None = None,
    ) -> None:
        """``queue``: the call enters that queue now; a call already QUEUED
        elsewhere (overflow, timeout and retry) ends its wait there with a line."""
        if status == call.status and queue is None:
            return
        if duration is None:
            duration = max(0, round(ts - call.since))
        if call.status != NEW:
            # An IVR (NA) line already names the queue the caller went on to.
            line_queue = call.queue or queue or ""
            self._ch.transitions.append(
                Transition(
                    "CALL", call.callerid, call.status, call.since, duration, line_queue, call.id
                )
            )
        if call.status == QUEUED:
            self._unwait(call)
        if queue is not None:
            self._index_queue(call, queue)
        call.status, call.since = status, ts
        if status == QUEUED:
            self._waiting.setdefault(call.queue, {})[call.id] = call.entered or ts
        if status in (HANGUP, ABANDON):
            self._forget_call(call)
        self._touch_call(call)
        self._ch._stats_dirty = True

    def _unwait(self, call: Call) -> None:
        waiting = self._waiting.get(call.queue)
        if waiting is not None:
            waiting.pop(call.id, None)
            if not waiting:
                del self._waiting[call.queue]

    def _index_queue(self, call: Call, queue: str) -> None:
        if call.queue and call.queue != queue:
            calls = self._queue_calls.get(call.queue)
            if calls is not None:
                calls.discard(call.id)
                if not calls:
                    del self._queue_calls[call.queue]
        call.queue = queue
        self._queue_calls.setdefault(queue, set()).add(call.id)

    def _forget_call(self, call: Call) -> None:
        self.calls.pop(call.id, None)
        calls = self._queue_calls.get(call.queue)
        if calls is not None:
            calls.discard(call.id)
            if not calls:
                del self._queue_calls[call.queue]
        grace = self._grace.pop(call.id, None)
        if grace is not None and grace.active():
            grace.cancel()
        self._ended[call.id] = call.status
        while len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)

    def _on_join(self, msg: Message, ts: float) -> None:
        uid = msg["Uniqueid"]
        queue = msg["Queue"]
        if not self._may_enter(uid):
            return
        call = self._call_from(msg, ts)
        if call.status == QUEUED and call.queue == queue and not call.left:
            return  # duplicate (after a QueueCallerLeave it is a retry of the same queue)
        if call.status == INCALL:
            return
        self._enter_queue(call, queue, ts)

    def _may_enter(self, uid: str) -> bool:
        """Whether a queue entry for ``uid`` is news: not for an ended call,
        unless an agent transferred it (then it is a new entry, same Uniqueid)."""
        ended = self._ended.get(uid)
        if ended == TRANSFERRED:
            del self._ended[uid]
        return ended is None or ended == TRANSFERRED

    def _enter_queue(self, call: Call, queue: str, entered: float) -> None:
        if call.status == QUEUED and call.left:
            self._timed_out(call)  # overflow or retry: the previous entry ended unanswered
        call.entered = entered
        call.left = False
        call.day = self.business_day.day_of(entered)
        self._counted(call.day).queue(queue).received += 1
        # The status that ends (IVR, or the wait in a previous queue) ended at entry,
        # which may be earlier than now when the entry is inferred (HoldTime, Wait).
        self._set_call_status(
            call, QUEUED, entered, duration=max(0, round(entered - call.since)), queue=queue
        )

    def _timed_out(self, call: Call) -> None:
        """Count once a queue entry that ended unanswered without an abandon."""
        self._counted(call.day).queue(call.queue).timeout += 1

    def _on_leave(self, msg: Message, ts: float) -> None:
        call = self.calls.get(msg.get("Uniqueid") or "")
        if call is not None and call.status == QUEUED and not call.left:
            # Out of the queue: no longer waiting, whether AgentConnect or a
            # timeout (then another queue, voicemail, a hang-up) follows.
            call.left = True
            self._unwait(call)
            self._ch._stats_dirty = True

    def _hold(self, msg: Message, call: Call, ts: float) -> int:
        hold = _int_field(msg, "HoldTime")
        if hold is None:
            hold = max(0, round(ts - (call.entered or ts)))
        return hold

    def _on_abandon(self, msg: Message, ts: float) -> None:
        call = self.calls.get(msg["Uniqueid"])
        if call is None or call.status != QUEUED:
            return
        self._abandon(call, self._hold(msg, call, ts), ts)

    def _abandon(self, call: Call, hold: int, ts: float) -> None:
        c = self._counted(call.day).queue(call.queue)
        c.abandoned += 1
        c.hold_abandoned += hold
        if hold <= self.sla:
            c.abandoned_in_sla += 1
        call.hold = hold
        self._set_call_status(call, ABANDON, ts, duration=hold)

    def _on_connect(self, msg: Message, ts: float) -> None:
        uid = msg["Uniqueid"]
        queue = msg["Queue"]
        if uid in self._ended:
            return
        agent = self._agent_for(msg)
        agentid = agent.agentid if agent else msg.get("MemberName") or msg.get("Interface") or ""
        if not agentid:
            raise ValueError("AgentConnect without MemberName or Interface")
        if agent is None:
            # E.g. the agent logged out (022) while its phone rang: Asterisk
            # still connects the call, so it is answered and must be counted.
            log.info("AgentConnect for member {a} not logged in; counting the call", a=agentid)
        hold = _int_field(msg, "HoldTime")
        call = self._call_from(msg, ts)
        if call.status == INCALL:
            return  # duplicate
        self._answer(call, agent, queue, hold, ts, agentid)

    def _answer(
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
            self._enter_queue(call, queue, ts - (hold or 0))
        if hold is None:
            hold = max(0, round(ts - (call.entered or ts)))
        uid = call.id
        c = self._counted(call.day).queue(call.queue)
        c.answered += 1
        c.hold_answered += hold
        if hold <= self.sla:
            c.answered_in_sla += 1
        call.hold = hold
        call.answered = ts
        agentid = agent.agentid if agent is not None else agentid
        call.agent = agentid
        call.left = False
        self._set_call_status(call, INCALL, ts, duration=hold)
        conn = Connection(id=uid, agentid=agentid, queue=call.queue, since=ts)
        self.connections[uid] = conn
        self._queue_conns.setdefault(call.queue, set()).add(uid)
        self._touch_connection(conn)
        if agent is not None:
            agent.call, agent.call_queue = uid, call.queue
            self._refresh_agent(agent, ts)

    def _on_complete(self, msg: Message, ts: float) -> None:
        uid = msg.get("Uniqueid") or ""
        conn = self.connections.get(uid)
        if conn is None:
            # Channel fields missing: the agent's current connection is the one.
            agent = self._agent_for(msg)
            if agent is None:
                # Removed from the queue mid-call (022, QueueRemove): its connection lives on.
                ids = {msg.get("MemberName"), msg.get("Interface")} - {None, ""}
                conn = next((c for c in self.connections.values() if c.agentid in ids), None)
            elif not agent.call:
                if agent.call == "":
                    agent.call, agent.call_queue = None, ""
                    self._refresh_agent(agent, ts)
                return
            else:
                conn = self.connections.get(agent.call)
            if conn is None or conn.queue != msg.get("Queue", conn.queue):
                return
        talk = _int_field(msg, "TalkTime")
        self._complete(conn, talk, ts)
        if (msg.get("Reason") or "").lower() == "transfer":
            self._ended[conn.id] = TRANSFERRED

    def _complete(self, conn: Connection, talk: int | None, ts: float) -> None:
        call = self.calls.get(conn.id)
        if talk is None:
            talk = max(0, round(ts - conn.since))
        self._touch_connection(conn, ended=True)
        del self.connections[conn.id]
        conns = self._queue_conns.get(conn.queue)
        if conns is not None:
            conns.discard(conn.id)
            if not conns:
                del self._queue_conns[conn.queue]
        day = call.day if call is not None else self.book.day
        c = self._counted(day).queue(conn.queue)
        c.completed += 1
        c.talk_completed += talk
        agent = self.agents.get(conn.agentid)
        if agent is not None:
            agent.calls_taken += 1
            agent.talk_time += talk
            if agent.call == conn.id:
                agent.call, agent.call_queue = None, ""
            self._refresh_agent(agent, ts)
        if call is not None:
            self._set_call_status(call, HANGUP, ts, duration=talk)

    def _caller_gone(self, call: Call, ts: float) -> None:
        """The caller's channel hung up (UserEvent CALLERHANGUP or Hangup)."""
        if call.status == NA:
            self._set_call_status(call, ABANDON, ts)  # never queued: not a KPI
        elif call.status == QUEUED:
            if call.left:
                # Left the queue unanswered (timeout), hung up later: not an abandon.
                self._timed_out(call)
                self._set_call_status(call, ABANDON, ts)
            else:
                # QueueCallerAbandon did not reach us; Asterisk would have counted one.
                self._abandon(call, max(0, round(ts - (call.entered or ts))), ts)
        elif call.status == INCALL and call.id not in self._grace:
            # AgentComplete normally follows within milliseconds; don't race it.
            self._grace[call.id] = self.clock.callLater(
                COMPLETE_GRACE, self._grace_expired, call.id, ts
            )

    def _grace_expired(self, uid: str, hung_up_at: float) -> None:
        self._grace.pop(uid, None)
        conn = self.connections.get(uid)
        if conn is None:
            return
        self._begin(self.clock.seconds())
        try:
            self._complete(conn, max(0, round(hung_up_at - conn.since)), hung_up_at)
        finally:
            self._commit()

    def _on_hangup(self, msg: Message, ts: float) -> None:
        call = self.calls.get(msg.get("Uniqueid") or "")
        if call is not None:
            self._caller_gone(call, ts)

    # ------------------------------------------------------------------ reconcile

    def request_resync(self) -> None:
        if self.ami is None or self._resync_pending:
            return
        self._resync_pending = True
        self.clock.callLater(0, self.resync)

    async def _resync(self) -> None:
        assert self.ami is not None
        self._touched_during_resync = set()
        try:
            channels: list[Message] | None
            try:
                channels = list(await self.ami.list_action("CoreShowChannels"))[1:]
            except Exception as e:
                log.warn("CoreShowChannels failed ({err}); reconciling without it", err=e)
                channels = None
            items = list(await self.ami.list_action("QueueStatus"))[1:]
            touched = self._touched_during_resync
            self.reconcile(items, channels, skip=touched)
        finally:
            self._touched_during_resync = None
            self._resync_pending = False

    def resync(self) -> defer.Deferred:
        """Ask the PBX for the truth and reconcile (after every AMI login)."""
        d = defer.ensureDeferred(self._resync())
        d.addErrback(lambda f: log.failure("resync with the PBX failed", f))
        return d

    def reconcile(
        self,
        items: Iterable[Message],
        channels: Iterable[Message] | None = None,
        skip: set[str] | None = None,
    ) -> None:
        """Bring state in line with a QueueStatus answer (and CoreShowChannels).

        What the PBX has and we lack is added; what we have and it no longer
        has is closed, reported once and counted once.  ``skip`` holds entities
        that events changed after the snapshot was taken: they are newer.
        """
        ts = self.clock.seconds()
        skip = skip or set()
        members: dict[str, dict[str, Message]] = {}
        entries: dict[str, Message] = {}
        for m in items:
            try:
                if m.event == "QueueMember":
                    location = m.get("Location") or m.get("Interface") or ""
                    agentid = (
                        self._by_interface.get(location)
                        or m.get("Name")
                        or m.get("MemberName")
                        or location
                    )
                    if agentid and m.get("Queue"):
                        members.setdefault(agentid, {})[m["Queue"]] = m
                elif m.event == "QueueEntry":
                    if m.get("Uniqueid") and m.get("Queue"):
                        entries[m["Uniqueid"]] = m
            except Exception as e:  # one bad item must not stop the rest
                log.warn("skipped a bad QueueStatus item: {err}", err=e)
        channels = None if channels is None else list(channels)
        alive = None if channels is None else {c.get("Uniqueid") for c in channels}
        bridges: dict[str, list[Message]] = {}
        for c in channels or ():
            if c.get("BridgeId"):
                bridges.setdefault(c["BridgeId"], []).append(c)
        bridged = (
            None if channels is None else {c.get("Uniqueid") for b in bridges.values() for c in b}
        )
        self._begin(ts)
        try:
            self._reconcile_agents(members, bridges, ts, skip)
            self._reconcile_calls(entries, alive, bridged, ts, skip)
        finally:
            self._commit()

    def _reconcile_agents(
        self,
        members: dict[str, dict[str, Message]],
        bridges: dict[str, list[Message]],
        ts: float,
        skip: set[str],
    ) -> None:
        for agentid, agent in list(self.agents.items()):
            if agentid not in members and "agent:" + agentid not in skip:
                if agent.call and agent.call in self.connections:
                    self._complete(self.connections[agent.call], None, ts)
                self._log_out(agent, ts)
        for agentid, queues in members.items():
            if "agent:" + agentid in skip:
                continue
            first = next(iter(queues.values()))
            interface = first.get("Location") or first.get("Interface") or ""
            new = agentid not in self.agents
            agent = self._ensure_agent(agentid, interface, ts)
            for queue in list(agent.queues):
                if queue not in queues:
                    self._drop_membership(agent, queue)
            for queue, m in queues.items():
                self._set_membership(agent, queue, _flag(m, "Paused"), m.get("PausedReason") or "")
            agent.device = DEVICE_STATES.get(first.get("Status") or "", agent.device)
            if new:
                # Paused by the login itself: LastPause is the login time, no reason.
                agent.fresh_login = all(
                    _flag(m, "Paused")
                    and not m.get("PausedReason")
                    and m.get("LastPause") == m.get("LoginTime")
                    for m in queues.values()
                )
            in_call = any(_flag(m, "InCall") for m in queues.values())
            if agent.call and not in_call:
                conn = self.connections.get(agent.call)
                if conn is not None:
                    self._complete(conn, None, ts)  # the call ended while we were away
                agent.call, agent.call_queue = None, ""
            elif in_call and agent.call is None:
                if not self._adopt_connection(agent, bridges, ts):
                    agent.call = ""  # on a call we cannot identify: INCALL without a CONNECT
            self._refresh_agent(agent, ts)

    def _adopt_connection(self, agent: Agent, bridges: dict[str, list[Message]], ts: float) -> bool:
        """Find, in CoreShowChannels, the queue caller bridged with this agent's leg.

        Used when the agent answered while we were not watching; the hold time
        is estimated from the two channels' ages (caller's minus agent leg's).
        """
        prefix = agent.interface + "-"
        for members in bridges.values():
            leg = next((c for c in members if (c.get("Channel") or "").startswith(prefix)), None)
            caller = next((c for c in members if c.get("Application") == "Queue"), None)
            if leg is None or caller is None or not caller.get("Uniqueid"):
                continue
            uid = caller["Uniqueid"]
            if uid in self.connections or not self._may_enter(uid):
                return False
            queue = (caller.get("ApplicationData") or "").split(",")[0] or next(
                iter(agent.queues), ""
            )
            age, leg_age = _hms(caller.get("Duration")), _hms(leg.get("Duration"))
            call = self._call_from(caller, ts - age, uid)
            hold = max(0, age - leg_age) if call.status != QUEUED else None
            answered = ts - age + (hold or 0) if call.status != QUEUED else ts
            self._answer(call, agent, queue, hold, min(answered, ts))
            return True
        return False

    def _reconcile_calls(
        self,
        entries: dict[str, Message],
        alive: set[str | None] | None,
        bridged: set[str | None] | None,
        ts: float,
        skip: set[str],
    ) -> None:
        for uid, call in list(self.calls.items()):
            if "call:" + uid in skip or uid in entries:
                continue
            if call.status == QUEUED:
                if bridged is not None and uid in bridged:
                    continue  # answered while we were away; its agent's events will end it
                if call.left:
                    # Left its queue unanswered (timeout): not an abandon; over once gone.
                    if alive is None or uid not in alive:
                        self._timed_out(call)
                        self._set_call_status(call, ABANDON, ts)
                    continue
                self._abandon(call, max(0, round(ts - (call.entered or ts))), ts)
            elif call.status == INCALL:
                conn = self.connections.get(uid)
                agent = self.agents.get(call.agent or "")
                if agent is None and bridged is not None and uid in bridged:
                    continue  # its agent left the queue mid-call; AgentComplete will end it
                if conn is not None and (agent is None or agent.call != uid):
                    self._complete(conn, None, ts)
            elif call.status == NA and alive is not None and uid not in alive:
                self._set_call_status(call, ABANDON, ts)
        for uid, e in entries.items():
            if "call:" + uid in skip or not self._may_enter(uid):
                continue
            try:
                wait = int(e.get("Wait") or 0)
            except ValueError:
                wait = 0
            call = self._call_from(e, ts - wait, uid)
            if call.status in (NEW, NA) or (
                # Overflowed or retried while we were away: a new entry, counted there.
                call.status == QUEUED and (call.queue != e["Queue"] or call.left)
            ):
                self._enter_queue(call, e["Queue"], ts - wait)


__all__ = [
    "AVAIL",
    "Callcenter",
    "Changes",
    "LOGGEDIN",
    "NotConnected",
    "UnknownAgent",
]
