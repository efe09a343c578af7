"""Views: the dashboard's STATS, AGENT, CALL and CONNECT objects, rendered
from the owners' state.  Read-only; cheap enough to run once per event
(O(queues + waiting callers), not O(everything))."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from callcenter.core.counting import whole
from callcenter.kpi import Counters, kpi_view
from callcenter.model import INCALL, Connection

if TYPE_CHECKING:
    from callcenter.center import Callcenter


def connect_json(center: Callcenter, conn: Connection, status: str = INCALL) -> dict[str, Any]:
    return conn.to_json(center.agents.get(conn.agentid), center.calls.get(conn.id), status)


def snapshot_objects(center: Callcenter) -> list[dict[str, Any]]:
    out = [center.stats()]
    out.extend(a.to_json() for a in center.agents.values())
    out.extend(c.to_json() for c in center.calls.values())
    out.extend(connect_json(center, c) for c in center.connections.values())
    return out


def stats_object(center: Callcenter, now: float) -> dict[str, Any]:
    book = center.book
    agents_by_queue = center.roster.by_queue
    available_by_queue = center.roster.available
    calls_by_queue = center.callbook.by_queue
    waiting_by_queue = center.callbook.waiting
    conns_by_queue = center.switchboard.by_queue
    queues = set(book.queues) | set(agents_by_queue) | set(calls_by_queue) | set(waiting_by_queue)
    per_queue: dict[str, dict[str, Any]] = {}
    oldest_all: float | None = None
    waiting_all = 0
    for q in sorted(queues):
        waiting = waiting_by_queue.get(q) or {}
        oldest = min(waiting.values()) if waiting else None
        if oldest is not None and (oldest_all is None or oldest < oldest_all):
            oldest_all = oldest
        waiting_all += len(waiting)
        per_queue[q] = {
            **kpi_view(book.queues.get(q) or Counters()),
            "agents_online": len(agents_by_queue.get(q) or ()),
            "agents_loggedin": len(agents_by_queue.get(q) or ()),
            "agents_available": len(available_by_queue.get(q) or ()),
            "calls_online": len(calls_by_queue.get(q) or ()),
            "connections_online": len(conns_by_queue.get(q) or ()),
            "calls_waiting": len(waiting),
            "longest_wait": whole(now - oldest) if oldest is not None else 0,
        }
    return {
        "type": "STATS",
        "day": book.day,
        **kpi_view(book.total()),
        "agents_online": len(center.agents),
        "calls_online": len(center.calls),
        "connections_online": len(center.connections),
        "calls_waiting": waiting_all,
        "longest_wait": whole(now - oldest_all) if oldest_all is not None else 0,
        "sla_seconds": center.sla,
        "queues": per_queue,
    }
