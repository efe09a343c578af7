"""What one event changed, and the one place that records it.

``Changes`` is the contract with the adapters (dashboard, Redis, report); the
``Tracker`` holds the ``Changes`` being built for the event being applied, so
the state owners note what they touched without knowing who listens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callcenter.kpi import DayBook
from callcenter.model import HANGUP, INCALL, Agent, Call, Connection
from callcenter.report import Transition


class Changes:
    """What one AMI event (or one reconcile) changed.

    ``objects``: the dashboard objects (AGENT/CALL/CONNECT) changed, in order;
    ``stats``: the new STATS object when a KPI or a count changed (built on
    first read: the fan-out reads only the last of a reactor turn's);
    ``transitions``: report lines; ``agents``/``calls``/``connections``: ids
    touched (for persistence: look the id up, absent means removed);
    ``days``: business days whose counters changed.
    """

    __slots__ = (
        "ts",
        "objects",
        "transitions",
        "agents",
        "calls",
        "connections",
        "days",
        "rolled",
        "cursor",
        "_render",
        "_stats_dirty",
        "_stats",
        "_stats_fn",
    )

    def __init__(self, ts: float) -> None:
        self.ts = ts
        self.objects: list[dict[str, Any]] = []
        self._stats: dict[str, Any] | None = None
        self._stats_fn: Callable[[], dict[str, Any]] | None = None
        self.transitions: list[Transition] = []
        self.agents: set[str] = set()
        self.calls: set[str] = set()
        self.connections: set[str] = set()
        self.days: set[str] = set()
        self.rolled: list[DayBook] = []  # finished days, when the business day turned
        self.cursor: Any = None  # the queue-log cursor's delta after this event (queuelog/persist.py)
        self._render: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {}
        self._stats_dirty = False

    @property
    def has_stats(self) -> bool:
        return self._stats is not None or (self._stats_dirty and self._stats_fn is not None)

    @property
    def stats(self) -> dict[str, Any] | None:
        if self._stats is None and self._stats_dirty and self._stats_fn is not None:
            self._stats = self._stats_fn()
        return self._stats

    @stats.setter
    def stats(self, value: dict[str, Any] | None) -> None:
        self._stats = value

    def __bool__(self) -> bool:
        return bool(
            self.objects or self.has_stats or self.transitions or self.days or self.rolled
        )


ConnectJson = Callable[[Connection, str], dict[str, Any]]


class Tracker:
    """Notes changed entities into the current ``Changes``.

    Live entities are rendered at commit (their final state of the event);
    ended ones are frozen when noted, since they are gone by then.
    """

    def __init__(
        self,
        connection_of: Callable[[str], Connection | None],
        connect_json: ConnectJson,
    ) -> None:
        self._connection_of = connection_of
        self._connect_json = connect_json
        self.current: Changes | None = None
        # Ids ("agent:1001", "call:…") changed by events while a resync's
        # snapshot was in flight: newer than that snapshot.
        self.resync_touched: set[str] | None = None

    @property
    def ch(self) -> Changes:
        assert self.current is not None, "state changed outside an event"
        return self.current

    def begin(self, ts: float) -> Changes:
        self.current = Changes(ts)
        return self.current

    def end(self) -> Changes | None:
        ch, self.current = self.current, None
        return ch

    def stats_dirty(self) -> None:
        self.ch._stats_dirty = True

    def transition(self, t: Transition) -> None:
        self.ch.transitions.append(t)

    def day(self, day: str) -> None:
        self.ch.days.add(day)
        self.ch._stats_dirty = True

    def _note(self, kind: str, ident: str, render: Callable[[], dict[str, Any]], live: bool) -> None:
        if live:
            self.ch._render[(kind, ident)] = render
        else:
            final = render()
            self.ch._render[(kind, ident)] = lambda: final
        if self.resync_touched is not None:
            self.resync_touched.add(f"{kind.lower()}:{ident}")

    def agent(self, agent: Agent, live: bool) -> None:
        self.ch.agents.add(agent.agentid)
        self._note("AGENT", agent.agentid, agent.to_json, live)
        conn = self._connection_of(agent.call) if agent.call else None
        if conn is not None:
            self.connection(conn)

    def call(self, call: Call, live: bool) -> None:
        self.ch.calls.add(call.id)
        self._note("CALL", call.id, call.to_json, live)
        conn = self._connection_of(call.id)
        if conn is not None:
            self.connection(conn)

    def call_record(self, call: Call) -> None:
        """A change only the store needs (nothing shown changed)."""
        self.ch.calls.add(call.id)

    def connection(self, conn: Connection, ended: bool = False) -> None:
        ch = self.ch
        ch.connections.add(conn.id)
        if ended:
            final = self._connect_json(conn, HANGUP)
            ch._render[("CONNECT", conn.id)] = lambda: final
        else:
            ch._render[("CONNECT", conn.id)] = lambda: self._connect_json(conn, INCALL)
