"""Fan-out of the call center's changes to the connected dashboards.

One ``Dashboards`` per site subscribes to the ``Callcenter`` while the site
listens.  Each ``Changes`` (one AMI event) is encoded once, framed once
(Autobahn prepared message) and written to every dashboard that said HELLO.
STATS are coalesced: a burst of events in one reactor turn sends only the
latest STATS, at the end of the turn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger(namespace="callcenter.web")


def encode(objects: Iterable[dict[str, Any]]) -> bytes:
    """Objects → one text frame payload: compact JSON objects separated by \\n."""
    return "\n".join(
        json.dumps(o, separators=(",", ":"), ensure_ascii=False) for o in objects
    ).encode("utf-8")


class Client(Protocol):
    """What the hub needs from a dashboard connection."""

    def send_payload(self, payload: bytes) -> None: ...
    def send_prepared(self, prepared: Any) -> None: ...
    def going_away(self) -> None: ...


class Dashboards:
    def __init__(
        self,
        center: Any,
        prepare: Callable[[bytes], Any],
        reactor: IReactorTime,
    ) -> None:
        self._center = center
        self._prepare = prepare
        self._reactor = reactor
        # dict, not set: delivery in connection order, deterministic for tests.
        self._clients: dict[Client, None] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._stats: dict[str, Any] | None = None
        self._flush_call: Any = None

    @property
    def clients(self) -> list[Client]:
        """The dashboards that said HELLO and are still connected."""
        return list(self._clients)

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self._center.subscribe(self._on_changes)

    def stop(self) -> None:
        """Unsubscribe and tell every dashboard we are going away (they reconnect)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        self._stats = None
        clients, self._clients = list(self._clients), {}
        for client in clients:
            client.going_away()

    def hello(self, client: Client) -> None:
        client.send_payload(encode(self._center.snapshot()))
        self._clients[client] = None

    def discard(self, client: Client) -> None:
        self._clients.pop(client, None)

    def _on_changes(self, changes: Any) -> None:
        # Called synchronously from the center's event handling: never raise into it.
        try:
            if changes.objects:
                self._broadcast(encode(changes.objects))
            if changes.stats is not None:
                self._stats = changes.stats
                if self._flush_call is None:
                    self._flush_call = self._reactor.callLater(0, self._flush_stats)
        except Exception:
            log.failure("dashboard fan-out failed")

    def _flush_stats(self) -> None:
        self._flush_call = None
        stats, self._stats = self._stats, None
        if stats is not None:
            self._broadcast(encode([stats]))

    def _broadcast(self, payload: bytes) -> None:
        if not self._clients:
            return
        prepared = self._prepare(payload)
        for client in list(self._clients):
            client.send_prepared(prepared)
