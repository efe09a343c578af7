"""Overload: a Redis slower than the events must not let our writes pile up.

Session 4's overload (the old stream of ``benchmarks/dashboard_fanout.py``)
grew the service's RSS from 0.4 to 3.2 GB in 10 s: every event's Redis
transaction waited in our memory (the transaction's commands, the socket's
write buffer) for a Redis that answered slower than the events came.  Now
past ``--redis-max-backlog`` bytes unanswered the store's pressure hooks stop
the PBX reader (``AMIClient.pause_reading``: the events wait in the socket,
then at the PBX) until half are answered; nothing is dropped.

Here Redis is really stopped (SIGSTOP: it reads nothing, answers nothing)
while callers keep coming, then continued.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest_twisted
from store.conftest import RedisServer
from store.events import abandon, hangup_request, join
from support.fake_asterisk import AsteriskManagerFactory, shipped_read
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater

from callcenter.ami.client import AMIClient
from callcenter.ami.message import Message
from callcenter.center import Callcenter
from callcenter.report import ReportWriter
from callcenter.store.redis_store import RedisStore

CALLS = 300
LIMIT = 16 * 1024


def _callers(t0: float) -> list[Message]:
    events = []
    for i in range(CALLS):
        uid = f"{int(t0)}.{i}"
        t = t0 + i * 0.01
        events += [join(t, uid)[1], hangup_request(t + 0.001, uid)[1], abandon(t + 0.002, uid, 0)[1]]
    return events


@pytest_twisted.ensureDeferred
async def test_a_stopped_redis_pauses_the_feed_instead_of_filling_memory(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    report = ReportWriter(str(tmp_path / "report.csv"))
    report.open()
    center = Callcenter(reactor, sla=10)
    store = RedisStore(reactor, redis.url, "bp:", center, report=report, max_backlog=LIMIT)
    told: list[bool] = []
    resumed: list[defer.Deferred] = []

    def pressure(full: bool) -> None:
        told.append(full)
        if not full:
            for d in resumed:
                d.callback(None)
            resumed.clear()

    store.add_pressure_hook(pressure)
    sent: list[int] = []  # every transaction's size: what would pile up without the bound
    send = store._send
    store._send = lambda proto, cmds: (sent.append(sum(map(len, (a for c in cmds for a in c)))),
                                      send(proto, cmds))[1]
    try:
        await store.load()
        store.start()
        events = _callers(reactor.seconds())
        largest = 0
        os.kill(redis.proc.pid, signal.SIGSTOP)
        stopped = True
        fed = 0
        for msg in events:
            if told and told[-1]:  # the reader is paused: wait for the hook, as a transport would
                if stopped:
                    assert store.backlog <= LIMIT + largest  # bounded: stopped at the first over it
                    held = fed
                    os.kill(redis.proc.pid, signal.SIGCONT)
                    stopped = False
                d = defer.Deferred()
                resumed.append(d)
                await d.addTimeout(30, reactor)
            before = store.backlog
            center.handle_event(msg)
            largest = max(largest, store.backlog - before)
            fed += 1
            if fed % 50 == 0:
                await deferLater(reactor, 0)  # let Redis's answers in, as a reactor would
        assert not stopped, "the backlog never reached the bound: the feed was never paused"
        assert 0 < held < len(events)
        # Never near what the events wrote in all (634 KB here, all of which piled
        # up without the bound): the reader's stop, plus what the center's own
        # timers (a caller's settle) write meanwhile, which no reader pause stops.
        assert store.backlog_peak <= 4 * LIMIT < sum(sent) / 8
        await store.flush()
        assert told[0] is True and told[-1] is False
        # Nothing lost: every caller's report line, and Redis holds no call (all ended).
        lines = (tmp_path / "report.csv").read_text().splitlines()
        assert sorted(line.split(";")[6] for line in lines) == sorted(
            f"{int(events[0]['Uniqueid'].split('.')[0])}.{i}" for i in range(CALLS))
        assert store.backlog == 0 and center.calls == {}
    finally:
        if redis.proc is not None:
            os.kill(redis.proc.pid, signal.SIGCONT)
        await store.stop()
        report.close()
        redis.stop()


@pytest_twisted.ensureDeferred
async def test_a_paused_pbx_reader_holds_events_and_keeps_the_link() -> None:
    server = AsteriskManagerFactory("admin", "s3cret", read=shipped_read())
    port = reactor.listenTCP(0, server, interface="127.0.0.1")
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
    client = AMIClient(reactor, endpoint, "admin", "s3cret", ping_interval=0.05, ping_timeout=0.1)
    got: list[str] = []
    client.add_listener("*", lambda m: got.append(m.get("Uniqueid", "")))
    client.startService()
    try:
        await client.whenConnected().addTimeout(10, reactor)
        client.pause_reading()
        for i in range(5):
            server.push(join(0.0, f"1.{i}")[1].to_bytes())
        await deferLater(reactor, 0.5)  # several ping intervals and timeouts
        assert got == [] and client.connected  # held, and not taken for a dead link
        client.resume_reading()
        for _ in range(200):
            if len(got) == 5:
                break
            await deferLater(reactor, 0.01)
        assert got == [f"1.{i}" for i in range(5)]
        assert len(server.connections) == 1  # the same connection throughout
    finally:
        await client.stopService()
        await port.stopListening()
        for conn in server.connections:
            if not conn.closed:
                conn.transport.abortConnection()
