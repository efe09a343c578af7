"""The counters mode over loopback TCP (issue 14, item 3): the service's real AMI
client against the fake Asterisk (tests/support/fake_asterisk.py), a real
Redis, and a gap of N = 2, 5, 30 s of events nobody heard.

Either the AMI connection drops (same process: the client reconnects, logs in,
resyncs) or the service is stopped and a new one starts from Redis (the
counters' baseline must come back from there).  The PBX answers the truth
after the gap from the independent app_queue model (tests/support/pbxstate.py).
Counts per queue and in total equal expected.json, abandoned vs timeout by
the documented rule (counters_gap.expected_split); seconds are estimates in
this mode (not compared); no report line is written twice.  The center runs
on a fake clock set to each event's recorded time; the sockets are real.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from typing import Any

import pytest
import pytest_twisted
from support.fake_asterisk import SHIPPED_READ, AsteriskManagerFactory
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.logger import globalLogPublisher

from callcenter.ami.client import AMIClient
from callcenter.ami.events import TRANSLATORS
from callcenter.ami.message import Message
from callcenter.center import Callcenter
from callcenter.store.redis_store import RedisStore
from tests.core import traces

from .counters_gap import (
    GAPS,
    caller_traces,
    cut_times,
    expected_counts,
    expected_split,
    fresh_pbx,
    got_counts,
    got_split,
)
from .support import Rig, assert_redis_is, parse_block, trace_blocks, trace_events, wait_for

SECRET = "counters-secret"


class Dispatch:
    """Sets the center's clock to each delivered event's recorded time; counts them."""

    def __init__(self, rig: Rig, blocks: list[tuple[float, bytes]]) -> None:
        self.rig = rig
        self.times: dict[tuple, deque[float]] = defaultdict(deque)
        for t, b in blocks:
            self.times[tuple(parse_block(b).headers)].append(t)
        self.seen = 0

    def __call__(self, msg: Message) -> None:
        times = self.times.get(tuple(msg.headers))
        if times:
            t = times.popleft()
            if t > self.rig.clock.seconds():
                self.rig.clock.advance(t - self.rig.clock.seconds())
        self.seen += 1
        Callcenter.handle_event(self.rig.center, msg)


def _pbx(state: dict[str, Any]) -> AsteriskManagerFactory:
    # The shipped manager.conf user: no "system" class, so no FullyBooted and no
    # second resync against this PBX's answer, which is fixed at the gap's end.
    pbx = AsteriskManagerFactory(secret=SECRET, read=SHIPPED_READ)
    pbx.answer_list("QueueStatus", "QueueStatusComplete", lambda: state["pbx"].queue_status(),
                    "Queue status will follow")
    pbx.answer_list("CoreShowChannels", "CoreShowChannelsComplete",
                    lambda: state["pbx"].core_show_channels(), "Channels will follow")
    return pbx


def _client(rig: Rig, dispatch: Dispatch, port: int) -> AMIClient:
    rig.center.handle_event = dispatch  # type: ignore[method-assign]
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    client = AMIClient(reactor, endpoint, "callcenter", SECRET, ping_interval=0, retry_initial=0.05)
    rig.center.attach(client)
    client.startService()
    return client


async def _run(
    redis_server: Any, name: str, gap: float, mode: str, prefix: str, cut: float | None = None
) -> Rig:
    blocks = trace_blocks(name)
    events = [(t, parse_block(b)) for t, b in blocks]
    expected = traces.load(name).expected
    cut = cut_times(events)[1] if cut is None else cut
    before = [b for t, b in blocks if t <= cut]
    after = [b for t, b in blocks if t > cut + gap]

    def heard(part: list[bytes]) -> int:  # the events the center listens to
        return sum(1 for b in part if parse_block(b).event in TRANSLATORS)
    state = {"pbx": fresh_pbx(expected)}
    pbx = _pbx(state)
    pbx.then_push("QueueStatus", b"".join(before))
    port = reactor.listenTCP(0, pbx, interface="127.0.0.1")
    rig = Rig(events[0][0])
    store = RedisStore(reactor, redis_server.url, prefix, rig.center)
    await store.load()
    store.start()
    dispatch = Dispatch(rig, blocks)
    client = _client(rig, dispatch, port.getHost().port)
    clients, stores = [client], [store]
    try:
        await wait_for(lambda: dispatch.seen == heard(before), what=f"{name}: events up to the cut")
        truth = fresh_pbx(expected).feed([(t, m) for t, m in events if t <= cut + gap])
        truth.now = max(truth.now, cut + gap)
        state["pbx"] = truth
        if mode == "drop":
            rig.clock.advance(max(0.0, cut + gap - rig.clock.seconds()))
            pbx.then_push("QueueStatus", b"".join(after))
            resyncs = rig.center.resyncer.completed
            pbx.drop_all()
            await wait_for(lambda: rig.center.resyncer.completed > resyncs,
                           what="the resync after the AMI drop")
            second, dispatch2 = rig, dispatch
            expect_seen = heard(before) + heard(after)
        else:
            await store.flush()
            await client.stopService()
            await store.stop()
            second = Rig(cut + gap)
            second.lines[:0] = rig.lines  # one report across both processes
            store2 = RedisStore(reactor, redis_server.url, prefix, second.center)
            await store2.load()
            assert second.center.pbx_counters.baseline is not None, "baseline not restored"
            store2.start()
            stores.append(store2)
            pbx.then_push("QueueStatus", b"".join(after))
            dispatch2 = Dispatch(second, [(t, b) for t, b in blocks if t > cut + gap])
            clients.append(_client(second, dispatch2, port.getHost().port))
            await wait_for(lambda: second.center.resyncer.completed > 0, what="the restart's resync")
            expect_seen = heard(after)
        await wait_for(lambda: dispatch2.seen == expect_seen, what=f"{name}: the rest of the trace")
        second.clock.advance(10)  # grace timers
        await stores[-1].flush()
        assert_redis_is(redis_server, second.center, prefix)
        return second
    finally:
        for c in clients:
            if c.running:
                await c.stopService()
        for s in stores:
            await s.stop()
        await port.stopListening()


# Every case, including a restart right before a queue timeout's QueueCallerAbandon
# (overflow-small, gap 2 s): the new process, which has seen no HangupRequest yet,
# must not take it for an abandon and lose the caller's entry into q-support.
CASES = [(n, g, mode) for n in caller_traces() for g in GAPS for mode in ("drop", "restart")]


@pytest.mark.parametrize(("name", "gap", "mode"), CASES)
@pytest_twisted.ensureDeferred
async def test_counts_after_a_gap_over_tcp(redis_server, name, gap, mode):
    prefix = f"cg:{name}:{gap}:{mode}:"
    rig = await _run(redis_server, name, gap, mode, prefix)
    where = (name, gap, mode, rig.center.pbx_counters.last)
    stats = rig.center.stats()
    assert got_counts(stats) == expected_counts(traces.load(name).expected), where
    assert got_split(stats) == expected_split(name, cut_times(trace_events(name))[1], gap), where
    # A status that began at the same time twice is a line written twice (a caller
    # who timed out has two NA lines, at different times; durations are estimates).
    keys = [tuple(x.split(";")[i] for i in (0, 1, 2, 3, 5, 6)) for x in rig.lines if ";CALL;" in x]
    assert not [k for k, c in Counter(keys).items() if c > 1], where


@pytest_twisted.ensureDeferred
async def test_the_catch_up_logs_its_estimated_lines(redis_server):
    """Item 5: lines with estimated seconds are written, and their number is logged."""
    logged: list[dict] = []
    globalLogPublisher.addObserver(logged.append)
    events = trace_events("answered")
    # Cut while callers wait; every end of a call falls in the gap.
    cut = max(t for t, m in events if m.event == "QueueCallerJoin") + 0.01
    gap = max(t for t, m in events if m.event == "AgentComplete") - cut + 0.5
    try:
        rig = await _run(redis_server, "answered", gap, "restart", "cg:log:", cut)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    last = rig.center.pbx_counters.last
    assert last is not None and last.answered >= 1 and last.estimated_lines >= 2
    lines = [e for e in logged if "report lines with estimated seconds" in str(e.get("log_format"))]
    assert [e["lines"] for e in lines] == [last.estimated_lines]
    # The vanished callers answered unseen have their QUEUED and INCALL lines.
    incall = [x for x in rig.lines if ";CALL;" in x and ";INCALL;" in x]
    assert len(incall) == traces.load("answered").expected["driver_counts"]["answered"]
