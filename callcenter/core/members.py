"""Queue membership events: an agent joins, pauses, changes device state,
leaves.  The rules of the login's own pause (shown as LOGGEDIN) live here."""

from __future__ import annotations

from callcenter.ami import events as ev
from callcenter.core.agents import Roster
from callcenter.core.flow import CallFlow
from callcenter.model import Agent


class MemberRules:
    def __init__(self, roster: Roster, flow: CallFlow) -> None:
        self.roster = roster
        self.flow = flow

    def changed(self, e: ev.MemberChanged) -> None:
        roster = self.roster
        agentid = roster.agentid_for(e.member, e.interface)
        known = roster.get(agentid)
        m = known.queues.get(e.queue) if known is not None else None
        reason = roster.spelled(e.paused, e.reason)
        if e.kind == "pause" and m is not None and (m.paused, m.reason) == (e.paused, reason):
            return  # the hangup handler's redundant unpause (gotcha 4): nothing changed
        agent = roster.ensure(agentid, e.interface, e.ts)
        if e.kind == "added":
            # Until first made available, a reasonless pause is the login's own: LOGGEDIN.
            agent.fresh_login = known is None or agent.fresh_login
        elif (e.paused and e.reason) or (not e.paused and m is not None and m.paused):
            agent.fresh_login = False
        roster.set_membership(agent, e.queue, e.paused, e.reason, e.wrapup)
        roster.set_login_time(agent, e.login_time)
        # e.g. UNAVAILABLE: the phone is unregistered, the queue will not ring it.
        roster.set_device(agent, e.device)
        roster.refresh(agent, e.ts)

    def removed(self, e: ev.MemberRemoved) -> None:
        agent = self.roster.find(e.member, e.interface)
        if agent is not None:
            self.roster.drop_membership(agent, e.queue)
            self.roster.refresh(agent, e.ts)

    def _dialplan_agent(self, agentid: str, member: str) -> Agent | None:
        """The agent the dialplan's LOGGEDIN/LOGGEDOUT names (``member`` is its interface)."""
        return self.roster.get(self.roster.agentid_for("", member) if member else "") or (
            self.roster.get(agentid) if agentid else None
        )

    def logged_out(self, e: ev.AgentLoggedOut) -> None:
        agent = self._dialplan_agent(e.agentid, e.member)
        if agent is not None and agent.queues:
            self.roster.log_out(agent, e.ts)

    def logged_in_known(self, e: ev.AgentLoggedIn) -> bool:
        """Whether we know the agent; its phone's name is taken (unless --agents names it)."""
        agent = self._dialplan_agent(e.agentid, e.member)
        if agent is None:
            return False
        if e.name and agent.name != e.name and agent.agentid not in self.roster.directory:
            agent.name = e.name
            self.roster.refresh(agent, e.ts)
        return True
