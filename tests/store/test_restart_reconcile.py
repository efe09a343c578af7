"""A restart, then a reconcile with a PBX that did not change: nothing happens.

The PBX's answer comes from outside the service: a real Asterisk's own
``QueueStatus`` recorded at the end of each trace (``*.final-status.ami``,
with its LoginTime, LastCall, Wrapuptime, ...), or the independent model in
``tests/support/pbxstate.py``.  Whatever a reconcile compares must survive
the restart in Redis, or every agent "changes" when the PBX tells us again
(a 10,000-agent centre then rewrote 20,000 dashboard objects at each start).
"""

from __future__ import annotations

import json
import re

import pytest
import pytest_twisted
from twisted.internet import reactor

from callcenter.ami.message import Message
from callcenter.store.redis_store import RedisStore
from tests.core import traces

from .support import Rig, assert_redis_is, state_of, trace_events

READS = {"get", "mget", "smembers", "sscan", "scan", "type", "lrange", "ping", "info",
         "select", "auth", "hello", "client", "command", "exists", "keys"}


def writes(redis) -> dict[str, int]:
    """Redis's own count of every write command it executed (INFO commandstats)."""
    out = {}
    for line in redis.command("INFO", "commandstats").decode().splitlines():
        m = re.match(r"cmdstat_([a-z|]+):calls=(\d+)", line)
        if m and m.group(1) not in READS:
            out[m.group(1)] = int(m.group(2))
    return out


async def started(rig: Rig, url: str) -> RedisStore:
    store = RedisStore(reactor, url, "callcenter:", rig.center)
    await store.load()
    store.start()
    await store.flush()  # the load's own clean-up belongs to the load
    return store


def _final_status_traces() -> list[str]:
    return [n for n in traces.EVENT_TRACES if (traces.TRACES / f"{n}.final-status.ami").exists()]


@pytest.mark.parametrize("name", _final_status_traces())
@pytest_twisted.ensureDeferred
async def test_reconcile_of_an_unchanged_pbx_after_a_restart_emits_and_writes_nothing(
    redis_server, name
):
    trace = traces.load(name)
    first = Rig(trace.start)
    store = await started(first, redis_server.url)
    first.feed(trace.messages())
    first.clock.advance(10)  # let any grace timer run, as the recording did
    await store.flush()
    await store.stop()
    assert first.center.agents, "the trace ends with agents logged in"

    second = Rig(first.clock.seconds())
    store2 = await started(second, redis_server.url)
    assert state_of(second.center) == state_of(first.center)
    before = writes(redis_server)
    second.center.reconcile(traces.final_status_items(name))
    await store2.flush()
    assert second.changes == [], "a reconcile that found nothing new published changes"
    assert writes(redis_server) == before
    assert_redis_is(redis_server, second.center)
    await store2.stop()


def _with_wrapup(events: list, seconds: int) -> list:
    """The trace as if its members had ``Wrapuptime: seconds`` (queues.conf's
    wrapuptime, which app_queue then reports on every member event)."""
    for _t, msg in events:
        if msg.event and msg.event.startswith("QueueMember"):
            msg.headers = [(k, str(seconds) if k == "Wrapuptime" else v) for k, v in msg.headers]
    return events


def _available(rig: Rig) -> dict[str, int]:
    return {q: s["agents_available"] for q, s in rig.center.stats()["queues"].items()}


@pytest_twisted.ensureDeferred
async def test_agents_in_wrap_up_at_a_restart_become_available_when_it_ends(redis_server):
    """Both agents of the answered trace end their last call in its final
    seconds; with a 30 s wrap-up they are still in it at the restart.  The
    restarted service must make each available again when its wrap-up ends,
    exactly when an uninterrupted one does, and the PBX's QueueStatus (the
    independent model, with LastCall and Wrapuptime) changes nothing."""
    from tests.support.pbxstate import PbxState

    events = _with_wrapup(trace_events("answered"), 30)
    whole = Rig(events[0][0])
    first = Rig(events[0][0])
    store = await started(first, redis_server.url)
    whole.feed(events)
    first.feed(events)
    await store.flush()
    await store.stop()
    ended = sorted(a.last_call for a in first.center.agents.values())
    assert len(ended) == 2 and all(first.clock.seconds() < t + 30 for t in ended)

    second = Rig(first.clock.seconds())
    store2 = await started(second, redis_server.url)
    before = writes(redis_server)
    items, channels = PbxState().feed(events).answers()
    second.center.reconcile(items, channels)
    await store2.flush()
    assert second.changes == [] and writes(redis_server) == before
    # Second by second through both wrap-ups: the same agents available as
    # the run that never stopped.
    assert _available(second) == _available(whole)
    seen = []
    while second.clock.seconds() < ended[-1] + 32:
        for rig in (whole, second):
            rig.clock.advance(0.5)
        assert _available(second) == _available(whole), second.clock.seconds() - ended[0]
        seen.append(sum(_available(second).values()))
    assert seen[0] == 0 and seen[-1] == 2 and 1 in seen  # each at the end of its own wrap-up
    assert second.center.snapshot() == whole.center.snapshot()
    await store2.stop()


@pytest_twisted.ensureDeferred
async def test_a_record_from_before_login_time_and_wrap_up_loads_and_is_told_once(redis_server):
    """An agent saved by session 2's code (no login_time, last_call,
    wrapup_until, memberships without wrapup) still loads.  The PBX's fields
    are news once: the first reconcile writes them (the call that ended while
    we were away starts its wrap-up at the PBX's LastCall), and after another
    restart the same answer changes nothing."""
    t0 = 1795665000.0
    old = {  # Agent.to_record() as session 2 wrote it, spelt out by hand
        "agentid": "1001", "interface": "Local/1001@agent-connect", "status": "AVAIL",
        "since": t0 + 60, "reason": "", "queues": {"q-callcenter": {"paused": False, "reason": ""}},
        "fresh_login": False, "call": None, "call_queue": "", "calls_taken": 1, "talk_time": 20,
        "name": "", "since_queue": "q-callcenter", "device": "NOT_INUSE", "pause_time": {},
    }
    redis_server.command("SET", "callcenter:agent:1001", json.dumps(old))
    redis_server.command("SADD", "callcenter:agents", "1001")
    status = [Message.of(
        ("Event", "QueueMember"), ("Queue", "q-callcenter"), ("Name", "1001"),
        ("Location", "Local/1001@agent-connect"), ("StateInterface", "Local/1001@agent-connect"),
        ("Membership", "dynamic"), ("Penalty", "0"), ("CallsTaken", "1"),
        ("LastCall", str(int(t0 + 95))), ("LastPause", "0"), ("LoginTime", str(int(t0))),
        ("InCall", "0"), ("Status", "1"), ("Paused", "0"), ("PausedReason", ""),
        ("Wrapuptime", "15"),
    )]
    for restart in range(3):
        rig = Rig(t0 + 100 + restart)
        store = await started(rig, redis_server.url)
        agent = rig.center.agents["1001"]
        assert (agent.status, agent.calls_taken, agent.talk_time) == ("AVAIL", 1, 20)
        before = writes(redis_server)
        rig.center.reconcile(status)
        await store.flush()
        if restart == 0:  # told once
            assert [a for ch in rig.changes for a in ch.agents] == ["1001"]
            assert writes(redis_server) != before
        else:
            assert rig.changes == [] and writes(redis_server) == before
        saved = json.loads(redis_server.command("GET", "callcenter:agent:1001"))
        assert (saved["login_time"], saved["last_call"]) == (t0, t0 + 95)
        assert saved["queues"]["q-callcenter"]["wrapup"] == 15
        # app_queue rings it again once now - LastCall >= Wrapuptime: at t0 + 110.
        assert saved["wrapup_until"] == t0 + 110
        assert rig.center.stats()["queues"]["q-callcenter"]["agents_available"] == 0
        rig.clock.advance(t0 + 110 - rig.clock.seconds())
        assert rig.center.stats()["queues"]["q-callcenter"]["agents_available"] == 1
        await store.stop()
