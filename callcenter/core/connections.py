"""Connections: an agent talking to a caller, keyed by the caller's call id.
The one owner of the live connections and their per-queue index."""

from __future__ import annotations

from collections.abc import Iterable

from callcenter.core.changes import Tracker
from callcenter.model import Connection


class Switchboard:
    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self.connections: dict[str, Connection] = {}
        self.by_queue: dict[str, set[str]] = {}

    def get(self, uid: str) -> Connection | None:
        return self.connections.get(uid)

    def __contains__(self, uid: str) -> bool:
        return uid in self.connections

    def __len__(self) -> int:
        return len(self.connections)

    def of_agent(self, ids: set[str]) -> Connection | None:
        """The connection of an agent known by any of ``ids`` (member, interface)."""
        return next((c for c in self.connections.values() if c.agentid in ids), None)

    def open(self, uid: str, agentid: str, queue: str, since: float) -> Connection:
        conn = Connection(id=uid, agentid=agentid, queue=queue, since=since)
        self.connections[uid] = conn
        self.by_queue.setdefault(queue, set()).add(uid)
        self._tracker.connection(conn)
        return conn

    def close(self, conn: Connection) -> None:
        self._tracker.connection(conn, ended=True)
        del self.connections[conn.id]
        conns = self.by_queue.get(conn.queue)
        if conns is not None:
            conns.discard(conn.id)
            if not conns:
                del self.by_queue[conn.queue]

    def restore(self, connections: Iterable[Connection]) -> None:
        self.connections.clear()
        self.by_queue.clear()
        for conn in connections:
            self.connections[conn.id] = conn
            self.by_queue.setdefault(conn.queue, set()).add(conn.id)
