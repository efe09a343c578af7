"""Each hook's undelivered events: a bounded queue in memory, mirrored in Redis.

The outbox is a part of the Redis store's transactions (``RedisStore.add_part``):
the events a ``Changes`` produces are ``RPUSH``ed to ``P webhook:<name>:outbox``
in the very MULTI/EXEC that writes that change's state, so a SIGKILL can
never leave a state change in Redis without its events, or events without
their change.  An event leaves the outbox (``LREM``) only once its receiver
answered 2xx (or refused it with a 4xx).  At start the outboxes are read back
before the state is restored; when Redis was away, the store's full rewrite
puts memory's queues back.

A full queue drops its oldest event (in Redis too: ``LTRIM`` in the same
transaction), with a rate-limited log line.  This module never POSTs.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from callcenter.core.changes import Changes
from callcenter.logthrottle import LogThrottle
from callcenter.webhooks.config import HookConfig, safe_url
from callcenter.webhooks.events import EVENT_TYPES, VERSION, EventDeriver, WebhookEvent

log = Logger()

Command = list[bytes]
MAX_ENTRY = 64 * 1024  # bytes: an outbox entry read back larger than this is not ours
CHUNK = 1000


class Entry:
    """One undelivered event of one hook."""

    __slots__ = ("id", "body")

    def __init__(self, ident: str, body: bytes) -> None:
        self.id = ident
        self.body = body


class HookQueue:
    """One hook's queue, oldest first."""

    def __init__(self, hook: HookConfig, key: bytes) -> None:
        self.hook = hook
        self.key = key
        self.entries: deque[Entry] = deque()
        self.dropped = 0  # for tests and the log line

    def head(self) -> Entry | None:
        return self.entries[0] if self.entries else None

    def remove(self, entry: Entry) -> bool:
        if self.entries and self.entries[0] is entry:
            self.entries.popleft()
            return True
        try:
            self.entries.remove(entry)
        except ValueError:
            return False  # dropped meanwhile (full queue)
        return True


class Outbox:
    """The hooks' queues and their Redis mirror (a part of the store's transactions)."""

    def __init__(self, reactor: Any, center: Any, hooks: list[HookConfig], prefix: str) -> None:
        self.deriver = EventDeriver(center)
        self._throttle = LogThrottle(log, reactor)
        self.queues = [
            HookQueue(h, f"{prefix}webhook:{h.name}:outbox".encode()) for h in hooks
        ]
        self._store: Any = None
        self._wake: Callable[[], None] = lambda: None
        self.derived = 0  # events derived so far (tests, diagnostics)

    def on_wake(self, fn: Callable[[], None]) -> None:
        """Called (synchronously, after the event's commands were handed out) when
        queues got new entries."""
        self._wake = fn

    # ------------------------------------------------------------ store part

    def attach(self, store: Any) -> None:
        self._store = store

    def on_changes(self, ch: Changes) -> list[Command]:
        """The change's events, queued; the commands that put them in Redis."""
        events = self.deriver.derive(ch)
        if not events:
            return []
        self.derived += len(events)
        cmds: list[Command] = []
        for q in self.queues:
            mine = [e for e in events if e.type in q.hook.events]
            if not mine:
                continue
            for e in mine:
                q.entries.append(Entry(e.id, e.body))
            over = len(q.entries) - q.hook.max_queue
            if over > 0:
                for _ in range(over):
                    q.entries.popleft()
                q.dropped += over
                self._throttle.warn(
                    "webhook-drop:" + q.hook.name,
                    "webhook {name} ({url}): queue full ({max} events); dropped the oldest "
                    "{n} undelivered event(s)",
                    name=q.hook.name, url=safe_url(q.hook.url), max=q.hook.max_queue, n=over,
                )
            cmds.append([b"RPUSH", q.key, *(e.body for e in mine)])
            cmds.append([b"LTRIM", q.key, str(-q.hook.max_queue).encode(), b"-1"])
        if cmds:
            self._wake()
        return cmds

    def full_commands(self) -> list[Command]:
        """Redis's outboxes made equal to memory's queues (the store's full rewrite)."""
        cmds: list[Command] = []
        for q in self.queues:
            cmds.append([b"DEL", q.key])
            bodies = [e.body for e in q.entries]
            for i in range(0, len(bodies), CHUNK):
                cmds.append([b"RPUSH", q.key, *bodies[i : i + CHUNK]])
        return cmds

    async def load(self, proto: Any) -> None:
        """Read the outboxes a previous process left (before the state is restored)."""
        for q in self.queues:
            raw = await proto.execute_command(b"LRANGE", q.key, b"0", b"-1")
            saved = _entries(raw if isinstance(raw, list) else [], q.hook.name, self._throttle)
            known = {e.id for e in q.entries}
            # Older than anything this process queued: in front, in their order.
            fresh = [e for e in saved if e.id not in known][-q.hook.max_queue :]
            q.entries.extendleft(reversed(fresh))
            while len(q.entries) > q.hook.max_queue:
                q.entries.popleft()
                q.dropped += 1
            if fresh:
                log.info(
                    "webhook {name}: {n} undelivered event(s) from before the restart",
                    name=q.hook.name, n=len(fresh),
                )
        self._wake()

    def restored(self) -> None:
        """The center holds the saved state: events are derived from here on."""
        self.deriver.prime()

    # ------------------------------------------------------------ delivery side

    def delivered(self, q: HookQueue, entry: Entry) -> None:
        """Out of the queue and out of Redis (if Redis is away, the full rewrite
        on its return leaves it out)."""
        q.remove(entry)
        if self._store is not None:
            self._store.execute([b"LREM", q.key, b"1", entry.body])


def _entries(raw: list[Any], name: str, throttle: LogThrottle) -> list[Entry]:
    out: list[Entry] = []
    for item in raw:
        entry = _entry(item)
        if entry is None:
            throttle.warn(
                "webhook-bad-entry:" + name,
                "webhook {name}: skipped an outbox entry in Redis that is not one of our events",
                name=name,
            )
            continue
        out.append(entry)
    return out


def _entry(item: Any) -> Entry | None:
    if not isinstance(item, bytes) or len(item) > MAX_ENTRY:
        return None
    try:
        doc = json.loads(item)
    except ValueError:
        return None
    if (
        not isinstance(doc, dict)
        or doc.get("version") != VERSION
        or doc.get("type") not in EVENT_TYPES
        or not isinstance(doc.get("id"), str)
    ):
        return None
    return Entry(doc["id"], item)


__all__ = ["Entry", "HookQueue", "Outbox", "WebhookEvent"]
