"""Reconcile: bring our state in line with the PBX's own answer, as a diff.

After every AMI login the PBX's truth (``QueueStatus`` and ``CoreShowChannels``,
already validated into a ``PbxSnapshot`` by the translate step) is compared
with what we hold, and only what differs is applied, through the same owners
and rules as live events.  A reconcile that finds nothing new therefore
changes nothing: no dashboard object, no Redis write, no report line.

What the PBX has and we lack is added; what we have and it no longer has is
closed, reported once and counted once.  ``skip`` holds the ids that events
changed after the snapshot was taken: they are newer than it.

Callers we knew as waiting who are gone from the PBX (answered and finished,
or gone unanswered, while we were not listening) are handed last, once
everything else is applied, to ``PbxCounters``: Asterisk's own queue
counters tell how many of them were answered (``core/pbx_counters.py``).
"""

from __future__ import annotations

from callcenter.ami.events import ChannelState, EntryState, MemberState, PbxSnapshot
from callcenter.core.calls import NEW
from callcenter.core.flow import CallFlow
from callcenter.core.pbx_counters import PbxCounters
from callcenter.model import ABANDON, INCALL, NA, QUEUED, Agent, Call

#: interface -> (that interface's leg, the queue caller) of a bridge holding both.
Legs = dict[str, tuple[ChannelState, ChannelState]]


def _legs(bridges: dict[str, list[ChannelState]]) -> Legs:
    """Index the bridges by their legs' interfaces, once per reconcile: looking
    each agent up in every bridge was quadratic (88 s for 10,000 agents).
    A channel is named ``<interface>-<sequence>`` (``PJSIP/1001-0000002a``,
    ``Local/1001@agent-connect-00000012;1``)."""
    legs: Legs = {}
    for chans in bridges.values():
        caller = next((c for c in chans if c.application == "Queue"), None)
        if caller is None:
            continue
        for c in chans:
            interface, dash, _ = c.channel.rpartition("-")
            if dash and c is not caller:
                legs.setdefault(interface, (c, caller))
    return legs


class Reconciler:
    def __init__(self, flow: CallFlow, counters: PbxCounters) -> None:
        self.flow = flow
        self.counters = counters
        self.roster = flow.roster
        self.calls = flow.calls
        self.switchboard = flow.switchboard

    def apply(self, snap: PbxSnapshot, ts: float, skip: set[str]) -> None:
        members: dict[str, dict[str, MemberState]] = {}
        for m in snap.members:
            agentid = self.roster.agentid_for(m.name, m.location)
            if agentid:
                members.setdefault(agentid, {})[m.queue] = m
        entries = {e.uid: e for e in snap.entries}
        channels = snap.channels
        alive = None if channels is None else {c.uid for c in channels}
        bridges: Legs = {}
        for c in channels or ():
            if c.bridge:
                bridges.setdefault(c.bridge, []).append(c)
        bridged = None if channels is None else {c.uid for b in bridges.values() for c in b}
        self._agents(members, _legs(bridges), ts, skip)
        vanished = self._calls(entries, alive, bridged, ts, skip)
        # Last: the counters' correction needs every other count of this reconcile.
        # Alive *and* running something other than Queue(): back in the dialplan.
        # (A channel still in Queue() but in no queue is leaving it right now: its
        # hang-up may be under way, so it tells nothing.)
        in_dialplan = None if channels is None else {c.uid for c in channels if c.application != "Queue"}
        self.counters.settle(vanished, snap.queues, ts, in_dialplan)

    # ------------------------------------------------------------ agents

    def _agents(
        self,
        members: dict[str, dict[str, MemberState]],
        bridges: Legs,
        ts: float,
        skip: set[str],
    ) -> None:
        for agent in self.roster:
            if agent.agentid not in members and "agent:" + agent.agentid not in skip:
                conn = self.switchboard.get(agent.call) if agent.call else None
                if conn is not None:
                    self.flow.complete(conn, None, ts)
                self.roster.log_out(agent, ts)
        for agentid, queues in members.items():
            if "agent:" + agentid not in skip:
                self._agent(agentid, queues, bridges, ts)
            else:
                self._identify(agentid, queues, ts)

    def _identify(self, agentid: str, queues: dict[str, MemberState], ts: float) -> None:
        """An agent events changed during the resync: its status is newer than
        the snapshot, but not who it is when they did not say (a queue log names
        a member by agent id alone): its interface and login time."""
        agent = self.roster.get(agentid)
        if agent is None:
            return
        first = next(iter(queues.values()))
        changed = not agent.interface and bool(first.location)
        if changed:
            self.roster.ensure(agentid, first.location, ts)
        if not agent.login_time:
            changed |= self.roster.set_login_time(agent, min(m.login_time for m in queues.values()))
        if changed:
            self.roster.refresh(agent, ts)

    def _agent(
        self,
        agentid: str,
        queues: dict[str, MemberState],
        bridges: Legs,
        ts: float,
    ) -> None:
        first = next(iter(queues.values()))
        known = self.roster.get(agentid)
        new = known is None
        changed = new or bool(first.location and known.interface != first.location)
        agent = self.roster.ensure(agentid, first.location, ts)
        for queue in list(agent.queues):
            if queue not in queues:
                changed |= self.roster.drop_membership(agent, queue)
        for queue, m in queues.items():
            changed |= self.roster.set_membership(agent, queue, m.paused, m.reason, m.wrapup)
        changed |= self.roster.set_device(agent, first.device)
        if len(queues) == 1:  # most agents: no generator for the min/max/any below
            login_time, last_queue, last_call, in_call = (
                first.login_time, first.queue, first.last_call, first.in_call)
        else:
            login_time = min(m.login_time for m in queues.values())
            last_queue = max(queues, key=lambda q: queues[q].last_call)
            last_call = queues[last_queue].last_call
            in_call = any(m.in_call for m in queues.values())
        changed |= self.roster.set_login_time(agent, login_time)
        if last_call > int(agent.last_call) + 1:
            # A call that ended while we were away (ours is the same second, or one
            # before Asterisk's own clock read: not news); its wrap-up runs from then.
            self.flow.wrap_up_since(agent, last_queue, float(last_call))
            changed = True
        if new:
            agent.fresh_login = all(m.login_pause for m in queues.values())
        if agent.call and not in_call:
            conn = self.switchboard.get(agent.call)
            if conn is not None:
                self.flow.complete(conn, None, ts)  # the call ended while we were away
            self.roster.set_call(agent, None)
            changed = True
        elif in_call and agent.call and self._other_caller(agent, bridges) not in (None, agent.call):
            # Finished that call and took another while we were away.
            conn = self.switchboard.get(agent.call)
            if conn is not None:
                self.flow.complete(conn, None, ts)
            self.roster.set_call(agent, None)
            if not self._adopt(agent, bridges, ts):
                agent.call = ""
            changed = True
        elif in_call and agent.call is None:
            # A connection opened before we knew the agent (a queue-log replay
            # at a first start names the member only): it is this agent's call.
            conn = self.switchboard.of_agent({agentid, agent.interface} - {""})
            if conn is not None:
                self.roster.set_call(agent, conn.id, conn.queue)
            elif not self._adopt(agent, bridges, ts):
                agent.call = ""  # on a call we cannot identify: INCALL without a CONNECT
            changed = True
        self.roster.refresh(agent, ts, changed)

    @staticmethod
    def _bridged_with(agent: Agent, bridges: Legs) -> tuple[ChannelState, ChannelState] | None:
        """(agent's leg, queue caller) of the bridge holding this agent's leg, if any."""
        return bridges.get(agent.interface) if agent.interface else None

    def _other_caller(self, agent: Agent, bridges: Legs) -> str | None:
        found = self._bridged_with(agent, bridges)
        return found[1].uid if found is not None else None

    def _adopt(self, agent: Agent, bridges: Legs, ts: float) -> bool:
        """Find, in CoreShowChannels, the queue caller bridged with this agent's leg.

        Used when the agent answered while we were not watching; the hold time
        is estimated from the two channels' ages (caller's minus agent leg's).
        """
        found = self._bridged_with(agent, bridges)
        if found is None:
            return False
        leg, caller = found
        uid = caller.uid
        if uid in self.switchboard or not self.calls.may_enter(uid):
            return False
        queue = caller.queue or next(iter(agent.queues), "")
        age, leg_age = caller.age or 0, leg.age or 0
        call = self.calls.get_or_create(uid, caller.callerid, caller.channel, ts - age)
        if call.status == QUEUED and call.queue != queue:
            # Timed out of the queue we saw it in, answered in the next one; when
            # it entered that one is unknown: taken as when the agent's leg began.
            self.flow.enter_queue(call, queue, ts - leg_age)
        hold = max(0, age - leg_age) if call.status != QUEUED else None
        answered = ts - age + (hold or 0) if call.status != QUEUED else ts
        self.flow.answer(call, agent, queue, hold, min(answered, ts))
        return True

    # ------------------------------------------------------------ calls

    def _calls(
        self,
        entries: dict[str, EntryState],
        alive: set[str] | None,
        bridged: set[str] | None,
        ts: float,
        skip: set[str],
    ) -> list[Call]:
        """Apply the call diff; returns the waiting callers gone from the PBX."""
        flow = self.flow
        vanished: list[Call] = []
        for call in list(self.calls.calls.values()):
            uid = call.id
            if "call:" + uid in skip or uid in entries:
                continue
            if call.status == QUEUED:
                if bridged is not None and uid in bridged:
                    continue  # answered while we were away; its agent's events will end it
                if call.left:
                    # Left its queue unanswered (timeout): not an abandon; over once gone.
                    if alive is None or uid not in alive:
                        flow.tally.timeout(call.day, call.queue)
                        self.calls.set_status(call, ABANDON, ts)
                    continue
                vanished.append(call)  # answered and over, or gone unanswered: see PbxCounters
            elif call.status == INCALL:
                conn = self.switchboard.get(uid)
                agent = self.roster.get(call.agent or "")
                if agent is None and bridged is not None and uid in bridged:
                    continue  # its agent left the queue mid-call; AgentComplete will end it
                if conn is not None and (agent is None or agent.call != uid):
                    flow.complete(conn, None, ts)
            elif call.status == NA and alive is not None and uid not in alive:
                self.calls.set_status(call, ABANDON, ts)  # its hang-up never reached us
        for uid, e in entries.items():
            if "call:" + uid in skip or not self.calls.may_enter(uid):
                continue
            existing = self.calls.get(uid)
            if existing is not None and existing.status == QUEUED and existing.queue == e.queue:
                if not existing.left:
                    continue  # as we have it
            call = self.calls.get_or_create(uid, e.callerid, e.channel, ts - e.wait)
            if e.callername and not call.callername:
                call.callername = e.callername
            if call.status in (NEW, NA) or (
                # Overflowed or retried while we were away: a new entry, counted there.
                call.status == QUEUED and (call.queue != e.queue or call.left)
            ):
                flow.enter_queue(call, e.queue, ts - e.wait)
        return vanished
