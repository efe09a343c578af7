"""Fan-out of the call center's changes to the connected dashboards.

One ``Dashboards`` per site subscribes to the ``Callcenter`` while the site
listens.  At the end of the reactor turn (``callLater(0)``) everything changed
in that turn goes out as one frame — each changed object once, in its latest
state of the turn (an agent touched by five events of one AMI read is sent
once, where its last change put it), then the STATS — encoded and framed once
(Autobahn prepared message) and written to every dashboard that said HELLO.
An event's objects are never split across frames.

STATS (4 KB with ten queues, most of a frame) goes only when it changed
(``longest_wait`` aside: the page ticks it from the waiting calls), and not
with every frame: a changed STATS rides with the first frame that goes at
least half a ``stats_interval`` (``--stats-interval``) after the previous
STATS, or goes alone one ``stats_interval`` after its change if no frame came.
So a figure is never more than ``stats_interval`` late, STATS goes at most
twice per interval, and on a busy center it costs no write of its own (each
write to each dashboard is most of the fan-out's cost: docs/performance.md).
AGENT, CALL and CONNECT objects never wait for it.  Each dashboard has a view (its user's role avatar, ``client.user``):
dashboards whose views are equal share one frame, and a scoped view gets
only the objects it may see (``visibility``), tested once per object and
view, never per client.  When the service is busy, one AMI read holds many events and this
batching keeps the writes per dashboard at one per turn instead of two per
event: that is what holds latency down with hundreds of dashboards.

HELLOs are served the same way: a HELLO only puts its dashboard on a list;
at the end of the turn, after the commands and the pushes of that turn, one
snapshot is built, framed once and sent to everyone on the list.  So a HELLO
flood from hundreds of clients costs one snapshot per turn, and commands go
ahead of it (each connection may also HELLO only once per ``hello_interval``:
``protocol.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from callcenter.web.limits import STATS_INTERVAL
from callcenter.web.visibility import GONE, SHOW, Directory, removal, visible

log = Logger(namespace="callcenter.web")



def encode_one(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def encode_each(objects: Iterable[dict[str, Any]]) -> list[str]:
    return [encode_one(o) for o in objects]


def encode(objects: Iterable[dict[str, Any]]) -> bytes:
    """Objects → one text frame payload: compact JSON objects separated by \\n."""
    return "\n".join(encode_each(objects)).encode("utf-8")


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
        decorate: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        config: dict[str, Any] | None = None,
        health: Any = None,
        stats_interval: float = STATS_INTERVAL,
    ) -> None:
        self._center = center
        self._config = config  # the CONFIG object, first in every HELLO reply
        # callcenter.health.Health: its HEALTH ends every HELLO answer and is
        # pushed (to every view alike) at the end of the turn it changed in.
        self._health = health
        self._health_dirty = False
        self._unsubscribe_health: Callable[[], None] | None = None
        self._prepare = prepare
        self._reactor = reactor
        # Adds what only the pages need to an object before it is encoded once for
        # every view (the screen pop's address on a CONNECT: screen_pop.py).
        self._decorate = decorate
        # dict, not set: delivery in connection order, deterministic for tests.
        self._clients: dict[Client, None] = {}
        # The clients grouped by view (_view_key: view, clients), rebuilt after a
        # client comes or goes rather than at every push.
        self._groups: dict[Any, tuple[Any, list[Client]]] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        # Objects changed in this reactor turn, by (kind, id): (their Item, the latest
        # object); a newer change of the same object replaces it and moves it last.
        self._pending: dict[Any, tuple[Any, dict[str, Any]]] = {}
        self.directory = Directory()  # every agent's and call's queues, for scoped views
        # What the STATS last sent to each view said (longest_wait aside, which the
        # page ticks itself; None: the views that see everything): an unchanged one
        # is not sent again, so another queue's event is not even visible as a push.
        self._last_stats: dict[Any, str] = {}
        self._stats: Any = None  # the latest Changes with a STATS not sent yet
        self._stats_since = 0.0  # when the oldest change it holds happened
        self.stats_interval = stats_interval
        self._stats_sent = float("-inf")  # when the last STATS went
        self._stats_call: Any = None  # the STATS' deadline, while one waits
        self._flush_call: Any = None
        self._hellos: dict[Client, None] = {}  # waiting for the end-of-turn snapshot
        self._hello_call: Any = None
        self.snapshots = 0  # snapshots built, for tests and the benchmark
        # Metrics: dashboards dropped for not reading, and observers called with the
        # seconds from a turn's first change to its frame being written.
        self.dropped_slow = 0
        self.push_observers: list[Callable[[float], None]] = []
        self._pending_since: float | None = None

    @property
    def clients(self) -> list[Client]:
        """The dashboards that said HELLO and are still connected."""
        return list(self._clients)

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self._center.subscribe(self._on_changes)
            self.directory.load_entities(*self._center.live_entities())
        if self._health is not None and self._unsubscribe_health is None:
            self._unsubscribe_health = self._health.subscribe(self._on_health)

    def stop(self) -> None:
        """Unsubscribe and tell every dashboard we are going away (they reconnect)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._unsubscribe_health is not None:
            self._unsubscribe_health()
            self._unsubscribe_health = None
        self._health_dirty = False
        for call in (self._flush_call, self._hello_call, self._stats_call):
            if call is not None and call.active():
                call.cancel()
        self._flush_call = self._hello_call = self._stats_call = None
        self._pending = {}
        self._pending_since = None
        self._stats = None
        clients, self._clients = list(self._clients) + list(self._hellos), {}
        self._groups = None
        self._hellos = {}
        for client in clients:
            try:
                client.going_away()
            except Exception:
                log.failure("closing a dashboard failed")

    def hello(self, client: Client) -> None:
        """``client`` gets a snapshot at the end of this turn, then every push."""
        self._hellos[client] = None
        if self._hello_call is None:
            self._hello_call = self._reactor.callLater(0, self._serve_hellos)

    def _serve_hellos(self) -> None:
        self._hello_call = None
        waiting, self._hellos = list(self._hellos), {}
        if not waiting:
            return
        # What is pending predates the snapshot: existing clients get it first
        # (a waiting STATS too, so that every dashboard of a view has the STATS
        # the snapshot has), the newcomers get only the snapshot, and every push after it.
        self._flush(force_stats=True)
        try:
            snapshot = self._center.snapshot()
            if self._decorate is not None:
                snapshot = [self._decorate(o) for o in snapshot]
            if self._health is not None:
                snapshot.append(self._health.to_json())
        except Exception:
            log.failure("building the dashboard snapshot failed")
            return
        self.snapshots += 1
        prepared_by_view: dict[Any, Any] = {}  # one filtered, framed snapshot per view
        for client in waiting:
            view = getattr(client, "user", None)
            key = view.view_key if view is not None else None
            try:
                prepared = prepared_by_view.get(key)
                if prepared is None:
                    objects = visible(view, self.directory, snapshot)
                    if objects and objects[0].get("type") == "STATS":
                        # Flushed just above: the view's other dashboards are as current.
                        self._last_stats[_view_key(view)] = _stats_signature(objects[0])
                    if self._config is not None:
                        objects = [self._config, *objects]
                    prepared = prepared_by_view[key] = self._prepare(encode(objects))
                client.send_prepared(prepared)
            except Exception:
                log.failure("sending a snapshot to a dashboard failed; dropping it")
                continue
            self._clients[client] = None
            self._groups = None

    def discard(self, client: Client) -> None:
        if self._clients.pop(client, 0) is None:
            self._groups = None
        self._hellos.pop(client, None)

    def _on_changes(self, changes: Any) -> None:
        # Called synchronously from the center's event handling: never raise into it.
        try:
            items = [self.directory.note(o) for o in changes.objects]
            if not self._clients:
                return  # nobody to tell; a HELLO takes a fresh snapshot
            if changes.objects:
                objects = changes.objects
                if self._decorate is not None:
                    objects = [self._decorate(o) for o in objects]
                pending = self._pending
                for item, obj in zip(items, objects, strict=True):
                    key = (item.kind, item.ident) if item is not None else object()
                    older = pending.pop(key, None)
                    if older is not None:
                        # A scoped view must still hear that it left the queues
                        # it had at the start of the turn.
                        item.was = older[0].was
                    pending[key] = (item, obj)
            if changes.has_stats:
                if self._stats is None:
                    self._stats_since = self._reactor.seconds()
                self._stats = changes  # its STATS is built when it goes, once
            if changes.objects or (changes.has_stats and self._stats_call is None):
                self._schedule_flush()
        except Exception:
            log.failure("dashboard fan-out failed")

    def _on_health(self, health: Any) -> None:
        if not self._clients:
            return  # a HELLO takes the current HEALTH
        self._health_dirty = True
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_call is None:
            self._pending_since = self._reactor.seconds()
            self._flush_call = self._reactor.callLater(0, self._flush)

    def _stats_deadline(self) -> None:
        self._stats_call = None
        self._flush(force_stats=True)

    def _take_stats(self, force: bool) -> dict[str, Any] | None:
        """The waiting STATS if it may ride with this frame (half an interval
        since the last one) or must go (``force``: its deadline, a HELLO);
        else None, with its deadline set (an interval after its change)."""
        if self._stats is None:
            return None
        now = self._reactor.seconds()
        if not force and now < self._stats_sent + self.stats_interval / 2:
            if self._stats_call is None:
                self._stats_call = self._reactor.callLater(
                    max(0.0, self._stats_since + self.stats_interval - now), self._stats_deadline)
            return None
        if self._stats_call is not None:
            if self._stats_call.active():
                self._stats_call.cancel()
            self._stats_call = None
        latest, self._stats = self._stats, None
        return latest.stats

    def _flush(self, force_stats: bool = False) -> None:
        """One frame per reactor turn: every object changed in it, the STATS if
        it changed and is due, then HEALTH if it changed."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        pending = list(self._pending.values())
        self._pending = {}
        since, self._pending_since = self._pending_since, None
        stats = self._take_stats(force_stats)
        health_line = None
        if self._health_dirty and self._health is not None:
            self._health_dirty = False
            health_line = encode_one(self._health.to_json())
        if not pending and stats is None and health_line is None:
            return
        views = self._groups
        if views is None:
            views = self._groups = {}
            for client in self._clients:
                view = getattr(client, "user", None)
                views.setdefault(_view_key(view), (view, []))[1].append(client)
        encoded = [(item, obj, encode_one(obj)) for item, obj in pending]
        stats_sent = False
        for key, (view, clients) in views.items():
            lines = self._lines_for(None if key is None else view, encoded)
            if stats is not None:
                scoped = stats if key is None else view.stats(stats)
                signature = _stats_signature(scoped)
                if self._last_stats.get(key) != signature:
                    self._last_stats[key] = signature
                    lines.append(encode_one(scoped))
                    stats_sent = True
            if health_line is not None:
                lines.append(health_line)
            if lines:
                self._broadcast("\n".join(lines).encode("utf-8"), clients)
        if stats_sent:
            self._stats_sent = self._reactor.seconds()
        if self.push_observers and since is not None and pending:
            took = max(0.0, self._reactor.seconds() - since)
            for observe in self.push_observers:
                observe(took)

    @staticmethod
    def _lines_for(view: Any, encoded: list[tuple[Any, dict[str, Any], str]]) -> list[str]:
        """The changed objects' lines ``view`` may see (None: everything)."""
        if view is None:
            return [line for _item, _obj, line in encoded]
        lines = []
        for item, obj, line in encoded:
            seen = SHOW if item is None else view.sees(item)
            if seen == SHOW:
                lines.append(line)
            elif seen == GONE:
                lines.append(encode_one(removal(item, obj)))
        return lines

    def _broadcast(self, payload: bytes, clients: list[Client]) -> None:
        prepared = self._prepare(payload)
        for client in clients:
            try:
                client.send_prepared(prepared)
            except Exception:  # one broken connection must not starve the others
                log.failure("sending to a dashboard failed; dropping it")
                self.discard(client)


def _view_key(view: Any) -> Any:
    """Dashboards with equal keys get the same frames (None: those that see everything)."""
    return None if view is None or view.everything else view.view_key


def _stats_signature(stats: dict[str, Any]) -> str:
    """STATS without the ever-ticking longest_wait, to tell a real change."""
    queues = {q: {k: v for k, v in f.items() if k != "longest_wait"}
              for q, f in (stats.get("queues") or {}).items()}
    return encode_one({k: v for k, v in stats.items() if k not in ("longest_wait", "queues")} | {"queues": queues})
