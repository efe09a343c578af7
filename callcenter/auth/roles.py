"""Roles as avatars: what a logged-in dashboard user may see and do.

``admin`` sees and commands everything; ``supervisor`` too, or only the
queues listed for that user; ``agent`` sees the center's figures and its own
agent (and its own conversation) and may pause/unpause only itself;
``wallboard`` sees what a supervisor of its scope sees and sends no command.

The fan-out asks ``sees(item)`` once per changed object and *view* (users with
the same ``view_key`` share one encoded frame), so these tests are a few set
operations, never a re-render of the object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zope.interface import Attribute, Interface, implementer

# What sees() answers.
SHOW, GONE, HIDE = "show", "gone", "hide"

# STATS keys summed over a scoped supervisor's queues; the means are weighted.
_SUMMED = (
    "calls_received", "calls_answered", "calls_abandoned", "calls_timeout",
    "agents_online", "calls_online", "connections_online", "calls_waiting",
)
_WEIGHTED = {  # mean key → the count it is a mean over
    "average_queue_time": ("calls_answered",),
    "average_handle_time": ("calls_answered",),
    "average_abandoned_time": ("calls_abandoned",),
    "sla": ("calls_answered",),
    "sla_with_abandoned": ("calls_answered", "calls_abandoned"),
}


@dataclass(slots=True)
class Item:
    """One dashboard object as the fan-out sees it: its queues now and before
    (an agent that left the last queue in scope must leave the page too)."""

    kind: str  # AGENT, CALL, CONNECT
    ident: str  # agent id, call id
    agent: str  # the agent id an AGENT or CONNECT is about ("" for a CALL)
    queues: frozenset[str]
    was: frozenset[str]


class IDashboardUser(Interface):
    """The avatar the portal gives the dashboard."""

    name = Attribute("user name")
    role = Attribute("admin, supervisor, agent or wallboard")
    view_key = Attribute("hashable: users with equal keys see exactly the same")
    everything = Attribute("True when sees() is SHOW for every item and stats() is the identity")

    def sees(item: Item) -> str:
        """SHOW, GONE (send a removal instead) or HIDE."""

    def stats(stats: dict[str, Any]) -> dict[str, Any]:
        """The STATS object this user may see."""

    def may_command(agentid: str, agent_queues: frozenset[str]) -> bool:
        """May this user pause/unpause that agent (a member of those queues)?"""

    def describe() -> dict[str, Any]:
        """What the page needs to adapt itself (no secret)."""


@implementer(IDashboardUser)
class _User:
    role = ""
    everything = False

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def view_key(self) -> Any:
        return (self.role,)

    def sees(self, item: Item) -> str:
        return SHOW

    def stats(self, stats: dict[str, Any]) -> dict[str, Any]:
        return stats

    def may_command(self, agentid: str, agent_queues: frozenset[str]) -> bool:
        return False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "commands": self.commands}

    commands = "none"  # none | own | all: which buttons the page shows

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class _Scoped(_User):
    """Sees every queue, or only ``queues``."""

    def __init__(self, name: str, queues: frozenset[str] | None = None) -> None:
        super().__init__(name)
        self.queues = queues
        self.everything = queues is None

    @property
    def view_key(self) -> Any:
        return ("all",) if self.queues is None else ("queues", self.queues)

    def sees(self, item: Item) -> str:
        if self.queues is None or item.queues & self.queues:
            return SHOW
        return GONE if item.was & self.queues else HIDE

    def stats(self, stats: dict[str, Any]) -> dict[str, Any]:
        if self.queues is None:
            return stats
        return scoped_stats(stats, self.queues)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self.queues is not None:
            d["queues"] = sorted(self.queues)
        return d


class Admin(_Scoped):
    role = "admin"
    commands = "all"

    def __init__(self, name: str) -> None:
        super().__init__(name, None)

    def may_command(self, agentid: str, agent_queues: frozenset[str]) -> bool:
        return True


class Supervisor(_Scoped):
    role = "supervisor"
    commands = "all"

    def may_command(self, agentid: str, agent_queues: frozenset[str]) -> bool:
        return self.queues is None or bool(agent_queues & self.queues)


class Wallboard(_Scoped):
    role = "wallboard"


class Agent(_User):
    role = "agent"
    commands = "own"

    def __init__(self, name: str, agentid: str) -> None:
        super().__init__(name)
        self.agentid = agentid

    @property
    def view_key(self) -> Any:
        return ("agent", self.agentid)

    def sees(self, item: Item) -> str:
        # Its own agent row and its own conversation; no caller list.
        return SHOW if item.kind != "CALL" and item.agent == self.agentid else HIDE

    def may_command(self, agentid: str, agent_queues: frozenset[str]) -> bool:
        return agentid == self.agentid

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"agent": self.agentid}


def avatar_for(user: Any) -> IDashboardUser:
    """The avatar of a users-file entry (callcenter.auth.users.User)."""
    if user.role == "admin":
        return Admin(user.name)
    if user.role == "supervisor":
        return Supervisor(user.name, user.queues)
    if user.role == "wallboard":
        return Wallboard(user.name, user.queues)
    if user.role == "agent":
        return Agent(user.name, user.agent)
    raise ValueError(f"unknown role {user.role!r}")


def scoped_stats(stats: dict[str, Any], queues: frozenset[str]) -> dict[str, Any]:
    """STATS restricted to ``queues``: their per-queue objects, and totals over them only.

    Counts are summed (an agent in two of the queues counts in both); means
    and percentages are weighted by the counts they are over, from the
    whole-second per-queue figures, so they may differ from an exact
    computation by rounding.
    """
    per_queue = {q: v for q, v in (stats.get("queues") or {}).items() if q in queues}
    out: dict[str, Any] = {"type": "STATS"}
    for key in ("day", "sla_seconds"):
        if key in stats:
            out[key] = stats[key]
    for key in _SUMMED:
        out[key] = sum(int(q.get(key) or 0) for q in per_queue.values())
    out["longest_wait"] = max((int(q.get("longest_wait") or 0) for q in per_queue.values()), default=0)
    for key, weights in _WEIGHTED.items():
        total = weight = 0.0
        for q in per_queue.values():
            w = sum(int(q.get(k) or 0) for k in weights)
            total += float(q.get(key) or 0) * w
            weight += w
        mean = total / weight if weight else 0.0
        out[key] = round(mean, 2) if key.startswith("sla") else int(mean + 0.5)
    received = out["calls_received"]
    out["abandon_rate"] = round(100.0 * out["calls_abandoned"] / received, 2) if received else 0.0
    out["queues"] = per_queue
    return out
