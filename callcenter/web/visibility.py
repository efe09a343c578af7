"""Which dashboard objects each role's view may receive, decided cheaply.

The ``Directory`` follows every AGENT and CALL object the center publishes
and remembers each one's queues, so that an object can be tagged with its
queues *now* and *before* (``callcenter.auth.roles.Item``).  A scoped view
then tests set intersections per object; an object that leaves the view's
queues (an agent removed from the last of them, a call transferred out) is
sent to that view as a removal, so its page drops it and learns nothing
about where it went.  Views that see everything skip all of this.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from callcenter.auth.roles import GONE, HIDE, SHOW, Item

_EMPTY: frozenset[str] = frozenset()
_CALL_ENDED = ("HANGUP", "ABANDON")


def _agent_queues(obj: dict[str, Any]) -> frozenset[str]:
    queues = obj.get("queues")
    if queues:
        return frozenset(queues)
    return frozenset((obj["queue"],)) if obj.get("queue") else _EMPTY


class Directory:
    def __init__(self) -> None:
        self.agents: dict[str, frozenset[str]] = {}
        self.calls: dict[str, frozenset[str]] = {}

    def load(self, objects: Iterable[dict[str, Any]]) -> None:
        self.agents.clear()
        self.calls.clear()
        for obj in objects:
            self.note(obj)

    def load_entities(self, agents: Iterable[Any], calls: Iterable[Any]) -> None:
        """``load`` of a center's snapshot, read from its agents and calls
        without building their objects (a 10,000-agent start built 40,000
        dashboard objects only to fill this); the same queues as ``note``."""
        self.agents.clear()
        self.calls.clear()
        for a in agents:
            if a.status == "LOGGEDOUT":
                continue
            if a.queues:
                self.agents[a.agentid] = frozenset(a.queues)
            else:  # the AGENT object's "queue": its call's queue, or none
                self.agents[a.agentid] = frozenset((a.call_queue,)) if a.call_queue else _EMPTY
        for c in calls:
            if c.status not in _CALL_ENDED:
                self.calls[c.id] = frozenset((c.queue,)) if c.queue else _EMPTY

    def agent_queues(self, agentid: str) -> frozenset[str]:
        return self.agents.get(agentid, _EMPTY)

    def tag(self, obj: dict[str, Any]) -> Item | None:
        """The Item of a current object (a snapshot's), without changing the directory."""
        kind = obj.get("type")
        if kind == "AGENT":
            return Item(kind, obj["agentid"], obj["agentid"], _agent_queues(obj), _EMPTY)
        if kind == "CALL":
            q = obj.get("queue")
            return Item(kind, obj["id"], "", frozenset((q,)) if q else _EMPTY, _EMPTY)
        if kind == "CONNECT":
            q = obj.get("queue")
            agent = (obj.get("agent") or {}).get("agentid", "")
            return Item(kind, obj["id"], agent, frozenset((q,)) if q else _EMPTY, _EMPTY)
        return None

    def note(self, obj: dict[str, Any]) -> Item | None:
        """The Item of a changed object; remembers its queues for the next change."""
        item = self.tag(obj)
        if item is None:
            return None
        if item.kind == "AGENT":
            item.was = self.agents.get(item.ident, _EMPTY)
            if obj.get("status") == "LOGGEDOUT":
                self.agents.pop(item.ident, None)
            else:
                self.agents[item.ident] = item.queues
        elif item.kind == "CALL":
            item.was = self.calls.get(item.ident, _EMPTY)
            if obj.get("status") in _CALL_ENDED:
                self.calls.pop(item.ident, None)
            else:
                self.calls[item.ident] = item.queues
        else:
            item.was = item.queues
        return item


def removal(item: Item, obj: dict[str, Any]) -> dict[str, Any]:
    """What a view is told about an object that left its queues: that it is gone."""
    if item.kind == "AGENT":
        if obj.get("status") == "LOGGEDOUT":
            return obj
        return {"type": "AGENT", "agentid": item.ident, "status": "LOGGEDOUT", "queue": "",
                "time": obj.get("time", 0)}
    if item.kind == "CALL":
        if obj.get("status") in _CALL_ENDED:
            return obj
        return {"type": "CALL", "id": item.ident, "status": "HANGUP", "queue": "",
                "time": obj.get("time", 0), "answered": 0}
    return obj


def visible(view: Any, directory: Directory, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A snapshot as ``view`` may see it (STATS first, as the center gives it)."""
    if view is None or view.everything:
        return objects
    out = []
    for obj in objects:
        if obj.get("type") == "STATS":
            out.append(view.stats(obj))
            continue
        item = directory.tag(obj)
        if item is None or view.sees(item) == SHOW:
            out.append(obj)
    return out


__all__ = ["Directory", "GONE", "HIDE", "SHOW", "removal", "visible"]
