"""Webhooks end to end in one process: a trace replayed into the center, the
Redis store and its outbox on a real redis-server, treq POSTing to a Twisted
web receiver on loopback.  Expected events come from the trace (support.py)."""

from __future__ import annotations

import pytest
import pytest_twisted
from store.support import Rig, trace_events, wait_for
from twisted.internet import reactor

from callcenter.store.redis_store import RedisStore
from callcenter.webhooks.config import HookConfig
from callcenter.webhooks.service import WebhookService

from .support import (
    SECRET,
    Receiver,
    expected_agents,
    expected_calls,
    got_agents,
    got_calls,
    no_duplicate_ids,
    per_key,
    signature_ok,
)

PREFIX = "callcenter:"


async def _rig(redis_url: str, hooks: list[HookConfig], name: str):
    events = trace_events(name)
    rig = Rig(events[0][0])
    webhooks = WebhookService(reactor, rig.center, hooks, PREFIX)
    store = RedisStore(reactor, redis_url, PREFIX, rig.center)
    store.add_part(webhooks.outbox)
    await store.load()
    store.start()
    webhooks.startService()
    return rig, events, store, webhooks


async def _stop(store: RedisStore, webhooks: WebhookService, port) -> None:
    await webhooks.stopService()
    await store.stop()
    await port.stopListening()


def _hook(port, **kw) -> HookConfig:
    url = f"http://127.0.0.1:{port.getHost().port}/hook"
    return HookConfig(name="crm", url=url, secret=SECRET, **kw)


@pytest.mark.parametrize("name", ["answered", "abandon", "pause-during-call"])
@pytest_twisted.ensureDeferred
async def test_replay_delivers_each_event_once_in_order_signed(redis_server, name):
    receiver = Receiver()
    port = receiver.listen()
    rig, events, store, webhooks = await _rig(redis_server.url, [_hook(port)], name)
    try:
        rig.feed(events)
        rig.clock.advance(10)  # hang-up grace and exit windows
        want_calls, want_agents = expected_calls(name), expected_agents(name)
        await wait_for(
            lambda: len(receiver.requests) >= len(want_calls) + len(want_agents),
            what="all events delivered",
        )
        await store.flush()
        reqs = receiver.requests
        assert all(signature_ok(r) for r in reqs)
        assert all(r.headers["content-type"] == "application/json" for r in reqs)
        assert no_duplicate_ids(reqs)
        assert all(r.doc["version"] == 1 for r in reqs)
        # Exactly one event per connect / end / status change, in order per call and per agent.
        assert per_key(got_calls(reqs)) == per_key(want_calls)
        assert per_key(got_agents(reqs)) == per_key(want_agents)
        assert len(reqs) == len(want_calls) + len(want_agents)
        # The caller's number goes to the hook.
        callers = {c["uniqueid"]: c["cid"] for c in _callers(name)}
        for r in reqs:
            if r.doc["type"].startswith("call."):
                assert r.doc["call"]["callerid"] == callers[r.doc["call"]["id"]]
        # Delivered events left the Redis outbox.
        await wait_for(lambda: redis_server.command("LLEN", PREFIX + "webhook:crm:outbox") == 0,
                       what="outbox empty")
    finally:
        await _stop(store, webhooks, port)


def _callers(name: str) -> list[dict]:
    import json

    from support.traces import TRACES

    return json.loads((TRACES / f"{name}.expected.json").read_text())["callers"]


@pytest_twisted.ensureDeferred
async def test_500_then_200_delivers_once_after_a_retry(redis_server):
    receiver = Receiver(script=[500])
    port = receiver.listen()
    hook = _hook(port, events=frozenset({"call.ended"}), retry_initial=0.05, jitter=0.0)
    rig, events, store, webhooks = await _rig(redis_server.url, [hook], "abandon")
    try:
        rig.feed(events)
        rig.clock.advance(10)
        await wait_for(lambda: len(receiver.delivered) == 2, what="both ends delivered")
        first, retry = receiver.requests[0], receiver.requests[1]
        assert first.code == 500 and retry.code == 200
        assert retry.body == first.body and signature_ok(retry)
        assert [r.code for r in receiver.requests] == [500, 200, 200]
        assert no_duplicate_ids(receiver.delivered)
        assert webhooks.senders[0].attempts == 3
    finally:
        await _stop(store, webhooks, port)


@pytest_twisted.ensureDeferred
async def test_400_is_not_retried_and_the_next_event_goes_on(redis_server, logs):
    receiver = Receiver(script=[400])
    port = receiver.listen()
    hook = _hook(port, events=frozenset({"call.ended"}), retry_initial=0.05, jitter=0.0)
    rig, events, store, webhooks = await _rig(redis_server.url, [hook], "abandon")
    try:
        rig.feed(events)
        rig.clock.advance(10)
        await wait_for(lambda: len(receiver.requests) == 2, what="both ends sent")
        await wait_for(lambda: redis_server.command("LLEN", PREFIX + "webhook:crm:outbox") == 0,
                       what="outbox empty")
        # Longer than several retry delays: nothing more comes.
        from store.support import sleep

        await sleep(0.5)
        assert [r.code for r in receiver.requests] == [400, 200]
        assert receiver.requests[0].doc["id"] != receiver.requests[1].doc["id"]
        assert logs.matching("refused event")
        assert not [line for line in logs.lines() if "555000" in line]  # no caller number logged
    finally:
        await _stop(store, webhooks, port)
