"""RedisStore against a real redis-server: per-event transactions, load, outage."""

from __future__ import annotations

import json
import subprocess
import time

import pytest_twisted
from twisted.internet import reactor

from callcenter.model import QUEUED
from callcenter.store.redis_store import DOWN, UP, RedisStore

from .support import (
    Rig,
    assert_redis_is,
    busiest_cut,
    state_of,
    trace_events,
    wait_for,
)


async def _started(rig: Rig, url: str, prefix: str = "callcenter:") -> RedisStore:
    store = RedisStore(reactor, url, prefix, rig.center)
    await store.load()
    store.start()
    return store


class Monitor:
    """``redis-cli monitor``: every command Redis executes, in order."""

    def __init__(self, port: int, path) -> None:
        self.path = path
        self.out = open(path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["redis-cli", "-p", str(port), "monitor"], stdout=self.out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while b"OK" not in path.read_bytes():
            assert time.monotonic() < deadline, "monitor did not start"
            time.sleep(0.01)

    def commands(self, transactions: int) -> list[list[str]]:
        deadline = time.monotonic() + 10
        while self.path.read_text().count('"EXEC"') < transactions:
            assert time.monotonic() < deadline, "monitor lags"
            time.sleep(0.01)
        self.proc.terminate()
        self.proc.wait(10)
        self.out.close()
        out = []
        for line in self.path.read_text().splitlines()[1:]:
            _, _, cmd = line.partition("] ")
            out.append(json.loads("[" + cmd.replace('" "', '", "') + "]"))
        return out


@pytest_twisted.ensureDeferred
async def test_each_event_is_one_transaction_touching_only_its_entities(redis_server, tmp_path):
    events = trace_events("answered")
    rig = Rig(events[0][0])
    store = await _started(rig, redis_server.url)
    monitor = Monitor(redis_server.port, tmp_path / "monitor.log")
    rig.feed(events)
    await store.flush()
    cmds = monitor.commands(store.transactions)
    # Split the command stream into transactions.
    txs: list[list[list[str]]] = []
    for c in cmds:
        if c[0] == "MULTI":
            txs.append([])
        elif c[0] == "EXEC":
            pass
        else:
            assert txs, f"{c[0]} outside a transaction"
            txs[-1].append(c)
    assert cmds.count(["MULTI"]) == cmds.count(["EXEC"]) == len(txs)
    written = [ch for ch in rig.changes if ch.agents or ch.calls or ch.connections or ch.days]
    assert len(txs) == len(written) == store.transactions
    for ch, tx in zip(written, txs, strict=True):
        touched = {k for c in tx for k in c[1:] if k.startswith("callcenter:") and ":" in k[11:]}
        expect = {f"callcenter:agent:{a}" for a in ch.agents}
        expect |= {f"callcenter:call:{c}" for c in ch.calls}
        expect |= {f"callcenter:conn:{c}" for c in ch.connections}
        expect |= {f"callcenter:day:{d}" for d in ch.days}
        assert touched == expect
        # No whole-state reads or scans on the event path.
        assert not {c[0] for c in tx} & {"KEYS", "SCAN", "SMEMBERS", "GET", "MGET"}
    assert_redis_is(redis_server, rig.center)
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_load_restores_identical_state(redis_server):
    # startup-status.setup ends with an agent on a call, paused agents and waiting callers.
    events = trace_events("startup-status.setup")
    events = events[: busiest_cut(events)]
    rig = Rig(events[0][0])
    store = await _started(rig, redis_server.url)
    rig.feed(events)
    await store.flush()
    await store.stop()
    assert rig.center.connections and any(c.status == QUEUED for c in rig.center.calls.values())
    assert rig.center.book.total().received > 0

    again = Rig(rig.clock.seconds())
    store2 = await _started(again, redis_server.url)
    assert state_of(again.center) == state_of(rig.center)
    assert again.center.snapshot() == rig.center.snapshot()
    assert again.center.stats() == rig.center.stats()
    await store2.flush()
    assert_redis_is(redis_server, again.center)
    await store2.stop()


@pytest_twisted.ensureDeferred
async def test_restart_then_reconcile_counts_nothing_twice(redis_server):
    """Restart + the PBX's QueueStatus (twice, as after an AMI reconnect) + a repeated
    event: KPIs and report exactly as an uninterrupted run."""
    events = trace_events("answered")
    whole = Rig(events[0][0])
    whole.feed(events)

    cut = busiest_cut(events)
    first = Rig(events[0][0])
    store = await _started(first, redis_server.url)
    first.feed(events[:cut])
    await store.flush()
    await store.stop()

    second = Rig(first.clock.seconds())
    store2 = await _started(second, redis_server.url)
    assert second.center.connections, "cut while a call is connected"
    # The PBX at the cut, as QueueStatus/CoreShowChannels would say: we derive it from memory.
    from .support import pbx_status

    items, channels = pbx_status(first.center)
    second.center.reconcile(items, channels)
    second.center.reconcile(items, channels)
    assert second.lines == []
    second.feed(events[cut - 1 : cut])  # an event seen twice
    second.feed(events[cut:])
    await store2.flush()
    assert first.lines + second.lines == whole.lines
    assert second.center.book.to_record() == whole.center.book.to_record()
    assert second.center.stats() == whole.center.stats()
    assert_redis_is(redis_server, second.center)
    await store2.stop()


@pytest_twisted.ensureDeferred
async def test_outage_keeps_serving_and_rewrites_everything_on_reconnect(redis_server, logs):
    events = trace_events("answered")
    rig = Rig(events[0][0])
    store = await _started(rig, redis_server.url)
    store.initial_delay = 0.05
    third = len(events) // 3
    rig.feed(events[:third])
    await store.flush()
    assert_redis_is(redis_server, rig.center)

    logged_before = len(logs.events)
    redis_server.stop()
    await wait_for(lambda: store.state == DOWN, what="the store to notice")
    before = len(rig.changes)
    rig.feed(events[third : 2 * third])
    assert len(rig.changes) > before, "subscribers kept getting changes"
    assert rig.center.book.total().received > 0
    await wait_for(lambda: store._attempt >= 3, what="several failed reconnections")
    rig.feed(events[2 * third : 2 * third + 50])
    lost = logs.matching("connection lost")
    assert len(lost) == 1 and "127.0.0.1" in lost[0]
    assert "refused" in store.last_error  # retries did fail...
    outage = [
        e
        for e in logs.events[logged_before:]
        if e.get("log_namespace", "").startswith("callcenter")
    ]
    assert len(outage) == 1, outage  # ...quietly: one line for the whole outage, none per event

    redis_server.start()  # same port, empty (no persistence)
    await wait_for(lambda: store.state == UP and store.full_syncs >= 1, what="reconnect")
    await store.flush()
    assert_redis_is(redis_server, rig.center)
    assert logs.matching("is back after")
    rig.feed(events[2 * third + 50 :])
    await store.flush()
    assert_redis_is(redis_server, rig.center)
    assert len(logs.matching("connection lost")) == 1
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_reconnect_replaces_what_is_there(redis_server):
    events = trace_events("login")
    rig = Rig(events[0][0])
    store = await _started(rig, redis_server.url)
    store.initial_delay = 0.05
    rig.feed(events)
    await store.flush()
    # Leftovers this process never wrote, as after a Redis restored from an old dump.
    redis_server.command("SET", "callcenter:agent:ghost", json.dumps({"agentid": "ghost"}))
    redis_server.command("SADD", "callcenter:agents", "ghost")
    redis_server.command("SET", "callcenter:call:old.1", "{}")
    redis_server.command("SADD", "callcenter:calls", "old.1")
    redis_server.command("SET", "other:agent:1", "kept")  # another call center's key
    syncs = store.full_syncs
    redis_server.command("CLIENT", "KILL", "TYPE", "normal")
    await wait_for(lambda: store.full_syncs > syncs and store.state == UP, what="resync")
    await store.flush()
    assert_redis_is(redis_server, rig.center)
    assert redis_server.command("GET", "other:agent:1") == b"kept"
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_prefixes_keep_call_centers_apart(redis_server):
    a_events = trace_events("login")
    b_events = trace_events("answered")
    a, b = Rig(a_events[0][0]), Rig(b_events[0][0])
    sa = await _started(a, redis_server.url, "east:")
    sb = await _started(b, redis_server.url, "west:")
    a.feed(a_events)
    b.feed(b_events)
    await sa.flush()
    await sb.flush()
    assert_redis_is(redis_server, a.center, "east:")
    assert_redis_is(redis_server, b.center, "west:")
    await sa.stop()
    await sb.stop()


@pytest_twisted.ensureDeferred
async def test_refused_writes_are_retried_as_a_full_write(redis_server, logs):
    events = trace_events("answered")
    rig = Rig(events[0][0])
    store = await _started(rig, redis_server.url)
    store.initial_delay = 0.05
    # An index of the wrong type makes the next transaction fail inside EXEC.
    redis_server.command("SET", "callcenter:calls", "not a set")
    rig.feed(events)
    await wait_for(lambda: logs.matching("refused a write"), what="the refusal")
    await wait_for(lambda: store.state == UP and store.full_syncs >= 1, what="the rewrite")
    await store.flush()
    assert_redis_is(redis_server, rig.center)
    assert len(logs.matching("refused a write")) == 1
    await store.stop()
