"""The simulated PBX: queues, agents and callers as a pure state machine.

This module knows nothing about AMI headers or sockets.  It moves calls
through the states the shipped dialplan gives them on a real Asterisk 22
(see ``../shared/ami-traces/REFERENCE.md``) and reports each step as a
*semantic* event ``(kind, *args)`` to its listeners; ``render.py`` turns
those into the exact header lists and ``server.py`` puts them on the wire.

Events are emitted synchronously, in the order a real Asterisk delivers them
for one channel / one member, and the objects they reference (``Chan``,
``Member``) are read at emission time, like Asterisk's snapshots.

All time comes from the ``IReactorTime`` given to the constructor and all
randomness from one ``random.Random``: on a ``task.Clock`` a run is exactly
repeatable.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterable, Sequence

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from callcenter.simulator.entities import (
    DOWN,
    INUSE,
    NOT_INUSE,
    RING,
    RINGING,
    UNKNOWN,
    UP,
    Agent,
    Attempt,
    Bridge,
    Caller,
    Chan,
    Member,
    Queue,
    QueueConfig,
)

# Dialplan timings measured on the rig: the dialplan's first application runs
# half a second after the originated pair comes up; an agent's phone rings one
# second before it answers (Ringing, Wait(1), Answer).
DIALPLAN_DELAY = 0.5
AGENT_ANSWER_DELAY = 1.0
# app_queue re-checks "is it my turn" once a second (RECHECK).
RECHECK = 1.0

Listener = Callable[..., None]


class PBXModel:
    """Queues, agents and callers, driven by dialplan-like steps on a clock.

    The public methods are what an AMI client or the traffic generator can
    do: ``originate``, ``queue_pause``, ``set_global``, ``hangup``,
    ``add_caller``.  Read access for action responses: ``queues``,
    ``channels``, ``agents``, ``now``.
    """

    def __init__(
        self,
        clock: IReactorTime,
        queues: Sequence[str] = ("q-callcenter",),
        *,
        rng: random.Random | None = None,
        epoch_offset: float | None = None,
        config: QueueConfig | None = None,
        default_talk: Callable[[], float] | None = None,
        hangup_unpauses: bool = False,
        login_sends_name: bool = True,
    ) -> None:
        if not queues:
            raise ValueError("the simulated PBX needs at least one queue")
        self.clock = clock
        self.rng = rng or random.Random(1)
        if epoch_offset is None:
            # A task.Clock starts at 0: give its events plausible Unix times.
            epoch_offset = 0.0 if clock.seconds() > 1e9 else 1_795_660_000.0
        self.epoch_offset = epoch_offset
        self.started = self.now()
        cfg = config or QueueConfig()
        self.queues: dict[str, Queue] = {name: Queue(name, cfg) for name in queues}
        self.agents: dict[str, Agent] = {}
        # Queues an agent joins when it dials 011 (default: the first queue).
        self.agent_queues: dict[str, list[str]] = {}
        self.channels: dict[str, Chan] = {}  # live channels, creation order
        self.globals: dict[str, str] = {}
        self.listeners: list[Listener] = []
        self._uid_seq = 0
        self._local_seq = 0
        self._timers: set[IDelayedCall] = set()
        self._default_talk = default_talk or (lambda: max(5.0, self.rng.expovariate(1 / 40.0)))
        # The shipped [hangup-handler] only sends CALLERHANGUP; the rig's original
        # one also ran UnpauseQueueMember (gotcha 4), which the recordings show.
        self.hangup_unpauses = hangup_unpauses
        # The shipped login's LOGGEDIN has a name: header; the rig's original had none.
        self.login_sends_name = login_sends_name
        self.stopped = False

    # -- plumbing ---------------------------------------------------------

    def now(self) -> float:
        return self.clock.seconds() + self.epoch_offset

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def _emit(self, kind: str, *args: object) -> None:
        for listener in self.listeners:
            listener(kind, *args)

    def _later(self, delay: float, fn: Callable[..., None], *args: object) -> IDelayedCall:
        call: IDelayedCall

        def run() -> None:
            self._timers.discard(call)
            fn(*args)

        call = self.clock.callLater(max(0.0, delay), run)
        self._timers.add(call)
        return call

    @staticmethod
    def _cancel(call: IDelayedCall | None) -> None:
        if call is not None and call.active():
            call.cancel()

    def stop(self) -> None:
        """Cancel every pending step (the state stays as it is)."""
        self.stopped = True
        for call in list(self._timers):
            self._cancel(call)
        self._timers.clear()

    def _new_uniqueid(self) -> str:
        uid = f"{int(self.now())}.{self._uid_seq}"
        self._uid_seq += 1
        return uid

    def _local_pair(self, exten: str, context: str, owner: object, role: str,
                    linkedid: str | None = None) -> tuple[Chan, Chan]:
        base = f"Local/{exten}@{context}-{self._local_seq:08x}"
        self._local_seq = (self._local_seq + 1) & 0xFFFFFFFF
        now = self.now()
        uid1 = self._new_uniqueid()
        c1 = Chan(base + ";1", uid1, linkedid or uid1, DOWN, context, exten, now, owner, role + "1")
        c2 = Chan(base + ";2", self._new_uniqueid(), c1.linkedid, RING, context, exten, now,
                  owner, role + "2")
        self.channels[c1.name] = c1
        self.channels[c2.name] = c2
        self._emit("Newchannel", c1)
        self._emit("Newchannel", c2)
        return c1, c2

    def _hangup_chan(self, ch: Chan, cause: int) -> None:
        self.channels.pop(ch.name, None)
        self._emit("Hangup", ch, cause)

    def agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            agent = self.agents[agent_id] = Agent(agent_id)
        return agent

    def find_members(self, interface: str, queue: str | None = None) -> list[Member]:
        key = interface.lower()
        queues = self.queues.values() if not queue else [q for q in self.queues.values()
                                                          if q.name.lower() == queue.lower()]
        return [q.members[key] for q in queues if key in q.members]

    # -- originate ----------------------------------------------------------

    def originate(
        self,
        channel: str,
        *,
        callerid: str = "",
        application: str = "",
        data: str = "",
        variables: dict[str, str] | None = None,
        action_id: str | None = None,
    ) -> bool:
        """AMI Originate of a Local channel into the rig's dialplan.

        ``action_id`` None (the traffic generator's own calls) means no
        OriginateResponse; "" means one without an ActionID header.

        ``Local/113@public`` is a caller for the first queue (shipped dialplan),
        ``Local/<queue>@callcenter`` the same for any queue,
        ``Local/<queue>@queues`` a FreePBX-style entry without UserEvents;
        ``Local/011@public`` / ``Local/022@public`` log the agent whose id is
        the caller-id number in / out.  Returns False (after reporting an
        OriginateResponse failure) when no such extension exists.
        """
        cid_name, cid_num = parse_callerid(callerid)
        variables = {k.lstrip("_").upper(): v for k, v in (variables or {}).items()}
        route = self._route(channel)
        if route is None:
            if action_id is None:
                return False
            self._emit("OriginateResponse", action_id, "Failure", channel, application, data, 0,
                       UNKNOWN, cid_num or UNKNOWN, cid_name or UNKNOWN)
            return False
        kind, exten, context, queue, userevents = route
        patience = None
        if application.lower() == "wait":
            patience = _to_float(data, 0.0)
        if kind == "caller":
            talk = _to_float(variables.get("TALK", ""), None)
            caller = Caller(self.queues[queue], cid_num, cid_name,
                            talk if talk is not None else self._default_talk(),
                            userevents=userevents)
            self._start_caller(caller, exten, context, application, data, action_id, patience)
        else:
            self._start_feature(kind, cid_num, cid_name, exten, context, application, data,
                                action_id)
        return True

    def route_exists(self, channel: str) -> bool:
        return self._route(channel) is not None

    def _route(self, channel: str) -> tuple[str, str, str, str, bool] | None:
        tech, _, rest = channel.partition("/")
        if tech.lower() != "local" or "@" not in rest:
            return None
        exten, _, context = rest.partition("@")
        context = context.split("/", 1)[0]
        first = next(iter(self.queues))
        if context == "public":
            if exten == "113":
                return ("caller", exten, context, first, True)
            if exten == "011":
                return ("login", exten, context, "", True)
            if exten == "022":
                return ("logout", exten, context, "", True)
        elif context in ("callcenter", "queues") and exten in self.queues:
            return ("caller", exten, context, exten, context == "callcenter")
        return None

    def add_caller(self, queue: str, cid_num: str, *, patience: float, talk: float,
                   end_side: str = "agent", cid_name: str = "Caller") -> Caller:
        """A simulated caller: gives up after ``patience`` seconds of waiting,
        talks ``talk`` seconds once answered, and then ``end_side`` hangs up."""
        q = self.queues[queue]
        caller = Caller(q, cid_num, cid_name, talk, patience_covers_talk=False,
                        end_side=end_side)
        exten, context = ("113", "public") if queue == next(iter(self.queues)) else (
            queue, "callcenter")
        self._start_caller(caller, exten, context, "Wait", str(int(patience)), None, None)
        caller.timers["patience"] = self._later(DIALPLAN_DELAY + patience, self.caller_hangup,
                                                caller)
        return caller

    def _originated_pair(self, exten: str, context: str, cid_num: str, cid_name: str,
                         app: str, data: str, action_id: str | None, owner: object,
                         role: str, dp_context: str, dp_exten: str) -> tuple[Chan, Chan]:
        c1, c2 = self._local_pair(exten, context, owner, role)
        c1.set_callerid(cid_num, cid_name)
        c2.set_callerid(cid_num, cid_name)
        self._emit("LocalBridge", c1, c2, context, exten)
        self._emit("DialBegin", None, c1, f"{exten}@{context}")
        c2.state, c2.context, c2.exten, c2.priority = UP, dp_context, dp_exten, 1
        self._emit("Newstate", c2)
        c1.state, c1.appl, c1.data = UP, app, data
        self._emit("Newstate", c1)
        self._emit("DialEnd", None, c1, "ANSWER")
        if action_id is not None:
            self._emit("OriginateResponse", action_id, "Success", c1.name, app, data, 4,
                       c1.uniqueid, cid_num or UNKNOWN, cid_name or UNKNOWN)
        return c1, c2

    # -- agents: feature codes ----------------------------------------------

    def _start_feature(self, kind: str, agent_id: str, cid_name: str, exten: str, context: str,
                       app: str, data: str, action_id: str | None) -> None:
        dp_context = "agent-login" if kind == "login" else "agent-logout"
        op = object()
        c1, c2 = self._originated_pair(exten, context, agent_id, cid_name, app, data, action_id,
                                       op, kind, dp_context, "s")
        step = self._login if kind == "login" else self._logout
        self._later(DIALPLAN_DELAY, step, agent_id, c1, c2)

    def _login(self, agent_id: str, c1: Chan, c2: Chan) -> None:
        if c2.name not in self.channels:
            return  # hung up before the dialplan ran
        if agent_id:
            agent = self.agent(agent_id)
            now = int(self.now())
            names = self.agent_queues.get(agent_id) or [next(iter(self.queues))]
            for qname in names:  # AddQueueMember: a member that exists already is left alone
                q = self.queues[qname]
                if agent.interface.lower() not in q.members:
                    member = Member(q, agent, now)
                    q.members[agent.interface.lower()] = member
                    agent.members[q.name] = member
                    self._emit("QueueMemberAdded", member)
            for member in list(agent.members.values()):  # PauseQueueMember
                self._set_paused(member, True, "")
            c2.priority = 6
            # The shipped dialplan's LOGGEDIN: also the phone's caller-id name.
            headers: tuple[tuple[str, str], ...] = (("agentid", agent_id), ("member", agent.interface))
            if self.login_sends_name:
                headers += (("name", "" if c2.cid_name == UNKNOWN else c2.cid_name),)
            self._emit("UserEvent", c2, "LOGGEDIN", headers)
        self._feature_done(c1, c2, 7)

    def _logout(self, agent_id: str, c1: Chan, c2: Chan) -> None:
        if c2.name not in self.channels:
            return
        if agent_id:
            agent = self.agent(agent_id)
            for qname, member in list(agent.members.items()):  # RemoveQueueMember
                q = self.queues[qname]
                del q.members[agent.interface.lower()]
                del agent.members[qname]
                self._emit("QueueMemberRemoved", member)
            c2.priority = 5
            self._emit("UserEvent", c2, "LOGGEDOUT",
                       (("agentid", agent_id), ("member", agent.interface)))
        self._feature_done(c1, c2, 6)

    def _feature_done(self, c1: Chan, c2: Chan, priority: int) -> None:
        c2.priority = priority
        self._emit("SoftHangupRequest", c2, 16)
        self._emit("HangupRequest", c1, 16)
        self._hangup_chan(c2, 16)
        self._hangup_chan(c1, 16)

    # -- pause ---------------------------------------------------------------

    def queue_pause(self, interface: str, queue: str | None, paused: bool,
                    reason: str = "") -> bool:
        """AMI QueuePause: False when no queue (of the one named) has the interface."""
        members = self.find_members(interface, queue)
        for member in members:
            self._set_paused(member, paused, reason)
        return bool(members)

    def _set_paused(self, member: Member, paused: bool, reason: str) -> None:
        # Asterisk reports every request, even one that changes nothing (gotcha 4).
        member.paused = paused
        member.reason = reason
        if paused:
            member.last_pause = int(self.now())
        self._emit("QueueMemberPause", member)

    # -- callers -------------------------------------------------------------

    def _start_caller(self, caller: Caller, exten: str, context: str, app: str, data: str,
                      action_id: str | None, patience: float | None) -> None:
        if caller.userevents:
            dp_context, dp_exten = "callcenter", "s"
        else:
            dp_context, dp_exten = "queues", caller.queue.name
        caller.ch1, caller.ch2 = self._originated_pair(
            exten, context, caller.cid_num, caller.cid_name, app, data, action_id, caller,
            "caller", dp_context, dp_exten)
        caller.timers["dialplan"] = self._later(DIALPLAN_DELAY, self._caller_enters, caller)
        if patience is not None:
            # The originated ;1 half runs Wait(patience); when it ends the caller hangs up.
            caller.timers["patience"] = self._later(patience, self.caller_hangup, caller)

    def _caller_enters(self, caller: Caller) -> None:
        ch = caller.ch2
        q = caller.queue
        if caller.userevents:
            ch.priority = 2
            self._emit("HangupHandlerPush", ch)
            ch.priority = 3
            self._emit("UserEvent", ch, "CALLER", ())
            ch.priority = 4
            ch.data = f"{q.name},,,,3600"
        else:
            ch.priority = 1
            ch.data = q.name
        ch.appl = "Queue"
        q.entries.append(caller)
        caller.state = "waiting"
        caller.join_time = self.now()
        caller.join_pos = len(q.entries)
        q.truth.offered += 1
        self._emit("QueueCallerJoin", ch, q.name, caller.join_pos, len(q.entries))
        self._emit("MusicOnHoldStart", ch)
        self._poll(caller)

    def _poll(self, caller: Caller) -> None:
        caller.timers.pop("poll", None)
        if caller.state != "waiting" or self.stopped:
            return
        q = caller.queue
        if not self._is_our_turn(caller):
            caller.timers["poll"] = self._later(RECHECK, self._poll, caller)
            return
        member = self._pick(q)
        if member is None:
            caller.timers["poll"] = self._later(q.config.retry, self._poll, caller)
            return
        self._ring(caller, member)

    def _is_our_turn(self, caller: Caller) -> bool:
        # app_queue's is_our_turn with autofill: callers ahead that are not
        # ringing anyone must be fewer than the available members.
        q = caller.queue
        avl = sum(1 for m in q.members.values() if not m.paused and m.agent.status == NOT_INUSE)
        ahead = 0
        for entry in q.entries:
            if entry is caller:
                break
            if entry.state != "ringing":
                ahead += 1
                if ahead >= avl:
                    return False
        return ahead < avl

    def _ringable(self, member: Member, q: Queue, now: float) -> bool:
        agent = member.agent
        if member.paused or agent.status != NOT_INUSE or agent.attempt is not None:
            return False
        return agent.last_call_end is None or now - agent.last_call_end >= q.config.wrapuptime

    def _pick(self, q: Queue) -> Member | None:
        """rrmemory: the next ringable member after the last one tried."""
        members = list(q.members.values())
        n = len(members)
        if not n:
            return None
        start = q.rrpos if q.rrpos < n else 0
        now = self.now()
        for i in range(n):
            idx = (start + i) % n
            if self._ringable(members[idx], q, now):
                q.rrpos = idx + 1
                return members[idx]
        return None

    def _answers(self, agent: Agent) -> bool:
        if self.globals.get(f"NOANSWER_{agent.id}", "0") not in ("", "0"):
            return False
        return not (agent.noanswer_prob and self.rng.random() < agent.noanswer_prob)

    def _ring(self, caller: Caller, member: Member) -> None:
        agent = member.agent
        q = caller.queue
        ch = caller.ch2
        answers = self._answers(agent)
        att = Attempt(caller, member, None, None, self.now(), answers)  # type: ignore[arg-type]
        a1, a2 = self._local_pair(agent.id, "agent-connect", att, "agent", caller.ch1.uniqueid)
        att.a1, att.a2 = a1, a2
        a1.set_callerid(caller.cid_num, caller.cid_name, connected=False)
        a2.set_callerid(caller.cid_num, caller.cid_name)
        self._emit("LocalBridge", a1, a2, "agent-connect", agent.id)
        a1.exten = "s"
        a1.cl_num, a1.cl_name = caller.cid_num, caller.cid_name
        self._emit("AgentCalled", ch, a1, q.name, member)
        self._emit("DialBegin", ch, a1, f"Local/{agent.id}@agent-connect")
        a1.state = RINGING
        self._emit("Newstate", a1)
        self._emit("DialState", ch, a1, "RINGING")
        a2.priority, a2.appl = (4, "Wait") if answers else (8, "Wait")
        a2.data = "1" if answers else "60"
        caller.state = "ringing"
        caller.attempt = att
        agent.attempt = att
        self._set_status(agent, INUSE)
        if answers:
            att.timer = self._later(AGENT_ANSWER_DELAY, self._answer, att)
        else:
            att.timer = self._later(q.config.timeout, self._ring_no_answer, att)

    def _set_status(self, agent: Agent, status: int) -> None:
        agent.status = status
        for member in list(agent.members.values()):
            self._emit("QueueMemberStatus", member)

    def _ring_no_answer(self, att: Attempt) -> None:
        caller, member = att.caller, att.member
        ch, a1 = caller.ch2, att.a1
        q = caller.queue
        ring_ms = int(round((self.now() - att.start) * 1000))
        self._emit("AgentRingNoAnswer", ch, a1, q.name, member, ring_ms)
        self._emit("DialEnd", ch, a1, "NOANSWER")
        self._emit("DialEnd", ch, a1, "CANCEL")
        self._drop_ringing_leg(att)
        q.truth.ring_no_answer += 1
        caller.state = "waiting"
        caller.attempt = None
        caller.timers["poll"] = self._later(q.config.retry, self._poll, caller)

    def _drop_ringing_leg(self, att: Attempt) -> None:
        self._cancel(att.timer)
        a1, a2 = att.a1, att.a2
        self._emit("HangupRequest", a2, 0)
        self._hangup_chan(a1, 0)
        self._emit("SoftHangupRequest", a2, 16)
        self._hangup_chan(a2, 0)
        agent = att.member.agent
        if agent.attempt is att:
            agent.attempt = None
        self._set_status(agent, NOT_INUSE)

    def _answer(self, att: Attempt) -> None:
        caller, member = att.caller, att.member
        agent = member.agent
        q = caller.queue
        ch, a1, a2 = caller.ch2, att.a1, att.a2
        now = self.now()
        a2.state, a2.exten, a2.priority = UP, agent.id, 5
        self._emit("Newstate", a2)
        a1.state = UP
        self._emit("Newstate", a1)
        self._emit("DialEnd", ch, a1, "ANSWER")
        self._emit("MusicOnHoldStop", ch)
        pos = q.entries.index(caller) + 1
        q.entries.remove(caller)
        self._emit("QueueCallerLeave", ch, q.name, pos, len(q.entries))
        caller.hold = int(now) - int(caller.join_time)
        ring = int(now) - int(att.start)
        self._emit("AgentConnect", ch, a1, q.name, member, caller.hold, ring)
        bridge = att.bridge = Bridge(self._uuid())
        self._emit("BridgeCreate", bridge)
        for c in (a1, ch):
            bridge.channels.append(c)
            c.bridge = bridge
            self._emit("BridgeEnter", bridge, c)
        a1.appl, a1.data = "AppQueue", "(Outgoing Line)"
        a2.priority, a2.appl, a2.data = 6, "Wait", str(int(caller.talk))
        member.in_call = True
        caller.state = "connected"
        caller.connect_time = now
        q.record_connect(caller.hold)
        t = q.truth
        t.answered += 1
        t.hold_answered += now - caller.join_time
        t.hold_answered_s += caller.hold
        if caller.hold <= q.config.servicelevel:
            t.answered_in_sl += 1
        if caller.patience_covers_talk:
            # The ;1 Wait keeps running: whoever comes first ends the call.
            caller.timers["talk"] = self._later(caller.talk, self.agent_hangup, caller)
        else:
            self._cancel(caller.timers.pop("patience", None))
            end = self.caller_hangup if caller.end_side == "caller" else self.agent_hangup
            caller.timers["talk"] = self._later(caller.talk, end, caller)

    def _uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    # -- hang-ups ------------------------------------------------------------

    def agent_hangup(self, caller: Caller) -> None:
        """The agent's phone hangs up (end of talk, or an AMI Hangup of its leg)."""
        if caller.state != "connected":
            return
        att = caller.attempt
        member = att.member
        q = caller.queue
        ch, a1, a2 = caller.ch2, att.a1, att.a2
        bridge = att.bridge
        talk = int(self.now()) - int(caller.connect_time)
        a2.priority = 7
        self._emit("SoftHangupRequest", a2, 16)
        self._emit("HangupRequest", a1, 16)
        self._emit("AgentComplete", ch, a1, q.name, member, caller.hold, talk, "agent")
        self._leave_bridge(bridge, a1)
        self._hangup_chan(a2, 16)
        self._hangup_chan(a1, 16)
        self._call_ended(caller, talk)
        self._leave_bridge(bridge, ch)
        self._emit("SoftHangupRequest", ch, 16)
        self._run_handler(caller, member)
        self._emit("BridgeDestroy", bridge)
        self._emit("HangupRequest", caller.ch1, 16)
        self._hangup_chan(ch, 16)
        self._hangup_chan(caller.ch1, 16)
        self._finish(caller)

    def caller_hangup(self, caller: Caller) -> None:
        """The caller hangs up: an abandon while queued, a caller-side end while talking."""
        state = caller.state
        if state == "done":
            return
        ch1, ch2 = caller.ch1, caller.ch2
        if state == "setup":
            self._emit("HangupRequest", ch2, 0)
            self._hangup_chan(ch1, 0)
            self._emit("SoftHangupRequest", ch2, 16)
            self._hangup_chan(ch2, 0)
            self._finish(caller)
            return
        self._emit("HangupRequest", ch2, 0)
        self._hangup_chan(ch1, 0)
        if state == "connected":
            self._caller_ends_call(caller)
            return
        q = caller.queue
        now = self.now()
        self._emit("MusicOnHoldStop", ch2)
        att = caller.attempt
        if att is not None:  # ringing an agent: the dial is cancelled
            self._emit("DialEnd", ch2, att.a1, "CANCEL")
            self._emit("DialEnd", ch2, att.a1, "CANCEL")
            self._cancel(att.timer)
            self._emit("HangupRequest", att.a2, 0)
            self._hangup_chan(att.a1, 0)
        pos = q.entries.index(caller) + 1
        q.entries.remove(caller)
        hold = int(now) - int(caller.join_time)
        self._emit("QueueCallerAbandon", ch2, q.name, pos, caller.join_pos, hold)
        self._emit("QueueCallerLeave", ch2, q.name, pos, len(q.entries))
        self._emit("SoftHangupRequest", ch2, 16)
        self._run_handler(caller, None)
        self._hangup_chan(ch2, 0)
        if att is not None:
            self._emit("SoftHangupRequest", att.a2, 16)
            self._hangup_chan(att.a2, 0)
            agent = att.member.agent
            if agent.attempt is att:
                agent.attempt = None
            self._set_status(agent, NOT_INUSE)
        q.record_abandon(hold)
        t = q.truth
        t.abandoned += 1
        t.hold_abandoned += now - caller.join_time
        t.hold_abandoned_s += hold
        if hold <= q.config.servicelevel:
            t.abandoned_in_sl += 1
        self._finish(caller)

    def _caller_ends_call(self, caller: Caller) -> None:
        att = caller.attempt
        member = att.member
        q = caller.queue
        ch, a1, a2 = caller.ch2, att.a1, att.a2
        bridge = att.bridge
        talk = int(self.now()) - int(caller.connect_time)
        # The agent leg is already gone from the snapshot cache: no Dest* fields (gotcha 5).
        self._emit("AgentComplete", ch, None, q.name, member, caller.hold, talk, "caller")
        self._leave_bridge(bridge, ch)
        self._emit("SoftHangupRequest", ch, 16)
        self._run_handler(caller, member)
        self._leave_bridge(bridge, a1)
        self._emit("HangupRequest", a2, 16)
        self._hangup_chan(a1, 16)
        self._emit("SoftHangupRequest", a2, 16)
        self._hangup_chan(a2, 16)
        self._emit("BridgeDestroy", bridge)
        self._hangup_chan(ch, 16)
        q.truth.completed_by_caller += 1
        self._call_ended(caller, talk)
        self._finish(caller)

    def _leave_bridge(self, bridge: Bridge, ch: Chan) -> None:
        if ch in bridge.channels:
            bridge.channels.remove(ch)
        ch.bridge = None
        self._emit("BridgeLeave", bridge, ch)

    def _run_handler(self, caller: Caller, member: Member | None) -> None:
        """The hangup handler: UserEvent CALLERHANGUP.  The shipped one stops
        there, so a pause set during the call survives it; with
        ``hangup_unpauses`` (the recorded rig's dialplan) it then unpauses the
        member of the call (``${MEMBERINTERFACE}`` is set only once connected)."""
        if not caller.userevents:
            return
        ch = caller.ch2
        self._emit("HangupHandlerRun", ch)
        ctx, exten, prio = ch.context, ch.exten, ch.priority
        ch.context, ch.exten, ch.priority = "hangup-handler", "s", 1
        self._emit("UserEvent", ch, "CALLERHANGUP", ())
        ch.context, ch.exten, ch.priority = ctx, exten, prio
        if (self.hangup_unpauses and member is not None
                and member.queue.members.get(member.interface.lower()) is member):
            self._set_paused(member, False, "")

    def _call_ended(self, caller: Caller, talk: int) -> None:
        att = caller.attempt
        member = att.member
        agent = member.agent
        q = caller.queue
        now = self.now()
        member.in_call = False
        member.calls_taken += 1
        member.last_call = int(now)
        agent.last_call_end = now
        if agent.attempt is att:
            agent.attempt = None
        self._set_status(agent, NOT_INUSE)
        q.record_complete(caller.hold, talk)
        t = q.truth
        t.completed += 1
        t.talk_completed += now - caller.connect_time
        t.talk_completed_s += talk

    def _finish(self, caller: Caller) -> None:
        caller.state = "done"
        for call in caller.timers.values():
            self._cancel(call)
        caller.timers.clear()

    def hangup(self, pattern: str) -> list[str]:
        """AMI Hangup: an exact channel name, or ``/regex/``.  Returns the
        names of the channels that matched (before any was hung up)."""
        if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/"):
            rx = re.compile(pattern[1:-1])
            names = [name for name in self.channels if rx.search(name)]
        else:
            names = [pattern] if pattern in self.channels else []
        # Callers first, so a connected call ends as a caller-side hang-up.
        chans = sorted((self.channels[n] for n in names), key=lambda c: not c.role.startswith("caller"))
        for ch in chans:
            if ch.name not in self.channels:
                continue  # went with its other half
            owner = ch.owner
            if isinstance(owner, Caller):
                self.caller_hangup(owner)
            elif isinstance(owner, Attempt):
                caller = owner.caller
                if caller.state == "connected" and caller.attempt is owner:
                    self.agent_hangup(caller)
                elif caller.state == "ringing" and caller.attempt is owner:
                    self._ring_no_answer(owner)
            else:  # a feature-code call still in its dialplan
                pair = [c for c in self.channels.values() if c.owner is owner]
                for c in pair:
                    self._hangup_chan(c, 16)
        return names

    # -- globals ---------------------------------------------------------

    def set_global(self, name: str, value: str) -> None:
        self.globals[name] = value

    # -- reads -------------------------------------------------------------

    def truth(self) -> dict[str, dict[str, float]]:
        """Ground truth per queue, plus the callers waiting and talking now."""
        out = {}
        for q in self.queues.values():
            d = q.truth.as_dict()
            d["waiting"] = len(q.entries)
            d["connected"] = d["answered"] - d["completed"]
            out[q.name] = d
        return out

    def live_callers(self) -> Iterable[Caller]:
        seen = set()
        for ch in self.channels.values():
            if isinstance(ch.owner, Caller) and id(ch.owner) not in seen:
                seen.add(id(ch.owner))
                yield ch.owner


_CALLERID = re.compile(r'^\s*(?:"(?P<qname>[^"]*)"|(?P<name>[^<]*?))\s*<(?P<num>[^>]*)>\s*$')


def parse_callerid(value: str) -> tuple[str, str]:
    """``"Agent 1001" <1001>`` -> ("Agent 1001", "1001"); a bare number is the number."""
    m = _CALLERID.match(value or "")
    if m:
        name = m.group("qname") if m.group("qname") is not None else (m.group("name") or "")
        return name.strip(), m.group("num").strip()
    value = (value or "").strip()
    if value.replace("+", "").isdigit():
        return "", value
    return value, ""


MAX_WAIT = 86400.0  # longer Waits are taken as a day: timers must stay finite


def _to_float(value: str, default: float | None) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return default
    if not math.isfinite(f) or f < 0:
        return default
    return min(f, MAX_WAIT)
