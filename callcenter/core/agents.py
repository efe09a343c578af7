"""Agents and their queue memberships: the one owner of both.

An agent is the member's ``MemberName`` (falling back to its interface); the
interface index and the per-queue member sets live here, behind ``find`` and
the membership methods, so no other module can let them drift apart.  Status
is never set directly: it is derived from memberships and the current call
(``refresh``), and every status that ends becomes one report line.
"""

from __future__ import annotations

from collections.abc import Iterable

from callcenter.core.changes import Tracker
from callcenter.core.counting import count_pause, whole
from callcenter.core.pause_reasons import PauseReasons
from callcenter.model import DEVICE_STATES, LOGGEDOUT, PAUSED, Agent, Membership
from callcenter.report import Transition

# Device states in which app_queue would ring the member (QueueSummary's Available).
_IDLE_DEVICES = frozenset({"", "NOT_INUSE", "UNKNOWN"})
_NOBODY: frozenset[str] = frozenset()


class Roster:
    def __init__(self, tracker: Tracker, reasons: PauseReasons | None = None) -> None:
        self._tracker = tracker
        self.reasons = reasons or PauseReasons()
        self.agents: dict[str, Agent] = {}
        self._by_interface: dict[str, str] = {}
        self.by_queue: dict[str, set[str]] = {}
        # Per queue, the members app_queue would ring now (QueueSummary's Available):
        # kept where an agent changes (``refresh``), so STATS never walks the agents.
        self.available: dict[str, set[str]] = {}
        self._ringing: dict[str, set[str]] = {}  # call id -> agents its ring is on
        # agent id -> (name, team) from --agents: wins over the phone's name.
        self.directory: dict[str, tuple[str, str]] = {}

    # ------------------------------------------------------------ lookups

    def agentid_for(self, member: str, interface: str) -> str:
        """Who ``member``/``interface`` is: the interface we know wins, since
        QueueStatus and events name the same member differently."""
        return self._by_interface.get(interface) or member or interface

    def find(self, member: str, interface: str) -> Agent | None:
        agentid = self.agentid_for(member, interface)
        return self.agents.get(agentid) if agentid else None

    def get(self, agentid: str) -> Agent | None:
        return self.agents.get(agentid)

    def __contains__(self, agentid: str) -> bool:
        return agentid in self.agents

    def __len__(self) -> int:
        return len(self.agents)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self.agents.values()))

    # ------------------------------------------------------------ changes

    def ensure(self, agentid: str, interface: str, ts: float) -> Agent:
        """The agent, created logged out (to be refreshed) when new."""
        agent = self.agents.get(agentid)
        if agent is None:
            agent = Agent(agentid=agentid, interface=interface, status=LOGGEDOUT, since=ts)
            known = self.directory.get(agentid)
            if known is not None:
                agent.name, agent.team = known
            self.agents[agentid] = agent
        if interface and agent.interface != interface:
            self._by_interface.pop(agent.interface, None)
            agent.interface = interface
        if interface:
            self._by_interface[interface] = agentid
        return agent

    def spelled(self, paused: bool, reason: str) -> str:
        """The reason a membership keeps: the configured spelling; none when unpaused."""
        return self.reasons.spelled(reason) if paused else ""

    def set_membership(
        self, agent: Agent, queue: str, paused: bool, reason: str, wrapup: int | None = None
    ) -> bool:
        """Returns whether anything changed.  ``wrapup``: the member's own
        Wrapuptime when the PBX said it (None: keep what we have)."""
        reason = self.spelled(paused, reason)
        m = agent.queues.get(queue)
        if m is None:
            agent.queues[queue] = Membership(paused, reason, wrapup or 0)
            self.by_queue.setdefault(queue, set()).add(agent.agentid)
            self._tracker.stats_dirty()
            return True
        changed = False
        if wrapup is not None and m.wrapup != wrapup:
            m.wrapup = wrapup  # not shown: it changes what a later call's wrap-up is
            changed = True
        if (m.paused, m.reason) == (paused, reason):
            return changed
        m.paused, m.reason = paused, reason
        return True

    def set_login_time(self, agent: Agent, login_time: float) -> bool:
        """The earliest LoginTime of its queues; returns whether it changed."""
        if login_time <= 0 or (agent.login_time and agent.login_time <= login_time):
            return False
        agent.login_time = float(login_time)
        return True

    # ------------------------------------------------------------ ringing

    def ring(self, agent: Agent, uid: str) -> bool:
        if agent.ringing == uid:
            return False
        self._unring(agent)
        agent.ringing = uid
        self._ringing.setdefault(uid, set()).add(agent.agentid)
        return True

    def stop_ring(self, agent: Agent, uid: str) -> bool:
        """The ring of ``uid`` on this agent ended (no answer)."""
        if not agent.ringing or agent.ringing != uid:
            return False
        self._unring(agent)
        return True

    def call_stops_ringing(self, uid: str, ts: float) -> None:
        """Caller ``uid`` was answered, left or ended: its ring stops on every phone."""
        agentids = self._ringing.pop(uid, _NOBODY)
        for agentid in agentids:
            agent = self.agents.get(agentid)
            if agent is not None and agent.ringing == uid:
                agent.ringing = ""
                self.refresh(agent, ts)

    def _unring(self, agent: Agent) -> None:
        ringers = self._ringing.get(agent.ringing)
        if ringers is not None:
            ringers.discard(agent.agentid)
            if not ringers:
                del self._ringing[agent.ringing]
        agent.ringing = ""

    def drop_membership(self, agent: Agent, queue: str) -> bool:
        if agent.queues.pop(queue, None) is None:
            return False
        members = self.by_queue.get(queue)
        if members is not None:
            members.discard(agent.agentid)
            if not members:
                del self.by_queue[queue]
        free = self.available.get(queue)
        if free is not None:
            free.discard(agent.agentid)
            if not free:
                del self.available[queue]
        self._tracker.stats_dirty()
        return True

    def set_device(self, agent: Agent, status_digit: str) -> bool:
        device = DEVICE_STATES.get(status_digit, agent.device)
        if device == agent.device:
            return False
        agent.device = device
        return True

    def set_call(self, agent: Agent, call: str | None, queue: str = "") -> None:
        agent.call, agent.call_queue = call, queue if call else ""

    def refresh(self, agent: Agent, ts: float, changed: bool = True) -> None:
        """Recompute status from memberships and call; report the status that
        ended.  ``changed``: something shown (memberships, device) changed even
        if the status did not, so the agent is published either way."""
        status = agent.derived_status()
        reason = agent.pause_reason() if status == PAUSED else ""
        if (status, reason) != (agent.status, agent.reason):
            if agent.status != LOGGEDOUT:
                seconds = whole(ts - agent.since)
                self._tracker.transition(
                    Transition(
                        "AGENT",
                        agent.agentid,
                        agent.status,
                        agent.since,
                        seconds,
                        agent.since_queue,
                        reason=agent.reason if agent.status == PAUSED else "",
                    )
                )
                if agent.status == PAUSED:
                    count_pause(agent.pause_time, agent.reason, seconds)
            agent.status, agent.reason, agent.since = status, reason, ts
            agent.since_queue = agent.queue
            changed = True
        if status == LOGGEDOUT:
            self.agents.pop(agent.agentid, None)
            if self._by_interface.get(agent.interface) == agent.agentid:
                del self._by_interface[agent.interface]
            if agent.ringing:
                self._unring(agent)
        else:
            self.note_available(agent, ts)
        if changed:
            self._tracker.agent(agent, agent.agentid in self.agents)

    def note_available(self, agent: Agent, ts: float) -> None:
        """Keep ``available`` right for this agent: a member app_queue would ring
        now (not paused there, no call, not ringing, phone idle, wrap-up over)."""
        free_now = (
            agent.call is None
            and not agent.ringing
            and agent.device in _IDLE_DEVICES
            and ts >= agent.wrapup_until
        )
        agentid = agent.agentid
        for queue, m in agent.queues.items():
            free = self.available.get(queue)
            is_free = free is not None and agentid in free
            if free_now and not m.paused:
                if not is_free:
                    self.available.setdefault(queue, set()).add(agentid)
                    self._tracker.stats_dirty()
            elif is_free:
                free.discard(agentid)  # type: ignore[union-attr]
                if not free:
                    del self.available[queue]
                self._tracker.stats_dirty()

    def log_out(self, agent: Agent, ts: float) -> None:
        for queue in list(agent.queues):
            self.drop_membership(agent, queue)
        self.refresh(agent, ts)

    def reset_day_counters(self) -> None:
        for agent in self.agents.values():
            if agent.calls_taken or agent.talk_time or agent.pause_time:
                agent.calls_taken = agent.talk_time = 0
                agent.pause_time = {}
                self._tracker.agent(agent, True)

    def restore(self, agents: Iterable[Agent], now: float = 0.0) -> None:
        self.agents.clear()
        self._by_interface.clear()
        self.by_queue.clear()
        self.available.clear()
        self._ringing.clear()
        for agent in agents:
            if not agent.queues or agent.status == LOGGEDOUT:
                continue
            agent.ringing = ""  # a ring is seconds long: the one saved is over
            self.agents[agent.agentid] = agent
            if agent.interface:
                self._by_interface[agent.interface] = agent.agentid
            for q in agent.queues:
                self.by_queue.setdefault(q, set()).add(agent.agentid)

    def rebuild_available(self, now: float) -> None:
        """After a restore (outside any change: nothing is published)."""
        self.available.clear()
        for agent in self.agents.values():
            if agent.call is None and not agent.ringing and agent.device in _IDLE_DEVICES \
                    and now >= agent.wrapup_until:
                for queue, m in agent.queues.items():
                    if not m.paused:
                        self.available.setdefault(queue, set()).add(agent.agentid)
