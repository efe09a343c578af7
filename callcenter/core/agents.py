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
from callcenter.model import DEVICE_STATES, LOGGEDOUT, PAUSED, Agent, Membership
from callcenter.report import Transition


class Roster:
    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self.agents: dict[str, Agent] = {}
        self._by_interface: dict[str, str] = {}
        self.by_queue: dict[str, set[str]] = {}

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
            self.agents[agentid] = agent
        if interface and agent.interface != interface:
            self._by_interface.pop(agent.interface, None)
            agent.interface = interface
        if interface:
            self._by_interface[interface] = agentid
        return agent

    def set_membership(self, agent: Agent, queue: str, paused: bool, reason: str) -> bool:
        """Returns whether anything changed."""
        reason = reason if paused else ""
        m = agent.queues.get(queue)
        if m is None:
            agent.queues[queue] = Membership(paused, reason)
            self.by_queue.setdefault(queue, set()).add(agent.agentid)
            self._tracker.stats_dirty()
            return True
        if (m.paused, m.reason) == (paused, reason):
            return False
        m.paused, m.reason = paused, reason
        return True

    def drop_membership(self, agent: Agent, queue: str) -> bool:
        if agent.queues.pop(queue, None) is None:
            return False
        members = self.by_queue.get(queue)
        if members is not None:
            members.discard(agent.agentid)
            if not members:
                del self.by_queue[queue]
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
        if changed:
            self._tracker.agent(agent, agent.agentid in self.agents)

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

    def restore(self, agents: Iterable[Agent]) -> None:
        self.agents.clear()
        self._by_interface.clear()
        self.by_queue.clear()
        for agent in agents:
            if not agent.queues or agent.status == LOGGEDOUT:
                continue
            self.agents[agent.agentid] = agent
            if agent.interface:
                self._by_interface[agent.interface] = agent.agentid
            for q in agent.queues:
                self.by_queue.setdefault(q, set()).add(agent.agentid)
