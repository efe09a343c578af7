"""The Redis side of link health (issue 13): the store's state hook, against a
real redis-server that is down at start, killed, and made to refuse writes."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor

from callcenter.health import Health, follow_store
from callcenter.store.redis_store import RedisStore

from .support import Rig, trace_events, wait_for


def _watched(rig: Rig, url: str) -> tuple[RedisStore, Health, list[tuple[bool, str]]]:
    store = RedisStore(reactor, url, "callcenter:", rig.center)
    store.initial_delay = 0.05
    health = Health(rig.clock)
    seen: list[tuple[bool, str]] = []
    health.subscribe(lambda h: seen.append((h.store.up, h.store.error)))
    follow_store(health, store)
    return store, health, seen


@pytest_twisted.ensureDeferred
async def test_down_at_start_then_up(redis_server) -> None:
    redis_server.stop()
    rig = Rig(trace_events("answered")[0][0])
    store, health, seen = _watched(rig, redis_server.url)
    await store.load()
    store.start()
    assert not health.store.up and "refused" in health.store.error.lower()
    redis_server.start()
    await wait_for(lambda: health.store.up, what="Redis back")
    assert seen[-1] == (True, "")
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_killed_then_back(redis_server) -> None:
    rig = Rig(trace_events("answered")[0][0])
    store, health, seen = _watched(rig, redis_server.url)
    await store.load()
    store.start()
    assert health.store.up and seen[-1] == (True, "")
    redis_server.stop()
    await wait_for(lambda: not health.store.up, what="the loss")
    assert seen[seen.index((True, "")) + 1] == (False, "connection lost")
    redis_server.start()
    await wait_for(lambda: health.store.up, what="Redis back")
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_refused_writes_are_store_down_with_redis_reason(redis_server) -> None:
    events = trace_events("answered")
    rig = Rig(events[0][0])
    store, health, _seen = _watched(rig, redis_server.url)
    await store.load()
    store.start()
    assert health.store.up
    # Redis answers but will not write: out of memory, as a full Redis says it.
    redis_server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    redis_server.command("CONFIG", "SET", "maxmemory", "1")
    rig.feed(events)
    await wait_for(lambda: not health.store.up, what="the refusal")
    assert health.store.error.startswith("write refused: OOM"), health.store.error
    redis_server.command("CONFIG", "SET", "maxmemory", "0")
    await wait_for(lambda: health.store.up, timeout=30, what="the rewrite")
    await store.stop()
