"""Every trace replayed over loopback TCP into the service's real AMI client,
whole and in 1-byte chunks: the same conclusions as Asterisk's own."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint

from callcenter.ami.client import AMIClient
from callcenter.ami.message import Message

from . import traces
from .replay_server import OneByteEndpoint, replay_pbx, retag


async def replay_tcp(trace: traces.Trace, one_byte: bool, start: float | None = None,
                     answers: dict[str, bytes] | None = None) -> traces.Outcome:
    factory = replay_pbx(trace, answers=answers)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    out = traces.new_center(trace.start if start is None else start)
    center = out.center
    timed = traces.TimedDispatch(trace, out)
    center.handle_event = lambda msg: timed(msg) if msg.event != "ReplayDone" else None  # type: ignore[method-assign]
    done: defer.Deferred = defer.Deferred()
    endpoint: Any = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
    if one_byte:
        endpoint = OneByteEndpoint(endpoint)
    client = AMIClient(reactor, endpoint, "callcenter", "s3cret", ping_interval=0)
    client.add_listener("ReplayDone", lambda _m: done.callback(None) if not done.called else None)
    center.attach(client)
    client.startService()
    try:
        await _with_timeout(done, 60)
    finally:
        await client.stopService()
        await port.stopListening()
    out.clock.advance(10)  # grace timers, if any
    actions = [m.get("Action") for m in factory.actions]
    assert actions[:1] == ["Login"] and "QueueStatus" in actions
    return out


def _with_timeout(d: defer.Deferred, seconds: float) -> defer.Deferred:
    return d.addTimeout(seconds, reactor)


@pytest.mark.parametrize("name", traces.EVENT_TRACES)
@pytest_twisted.ensureDeferred
async def test_tcp_replay_matches_asterisk(name: str) -> None:
    trace = traces.load(name)
    whole = await replay_tcp(trace, one_byte=False)
    traces.check(trace, whole)
    direct = traces.replay_direct(trace)
    assert whole.summary() == direct.summary()
    chunked = await replay_tcp(trace, one_byte=True)
    assert chunked.summary() == whole.summary()


def _recorded_answer(trace: traces.Trace, action_id: str) -> bytes:
    return b"".join(trace.message_bytes(i) for i in trace.idx if i["ActionID"] == action_id)


@pytest.mark.parametrize("one_byte", [False, True])
@pytest_twisted.ensureDeferred
async def test_tcp_startup_status(one_byte: bool) -> None:
    """The service starts while a call is connected and two wait: QueueStatus
    and CoreShowChannels answered as the real Asterisk answered them."""
    trace = traces.load("startup-status")
    answers = {
        "queuestatus": _recorded_answer(trace, "cti-2"),
        "coreshowchannels": _recorded_answer(trace, "cti-4"),
    }
    out = await replay_tcp(trace, one_byte, start=1795665190.047921, answers=answers)
    snap = out.center.snapshot()
    stats = snap[0]
    assert (stats["calls_received"], stats["calls_answered"], stats["calls_waiting"]) == (3, 1, 2)
    agents = {o["agentid"]: o for o in snap if o["type"] == "AGENT"}
    assert {a: o["status"] for a, o in agents.items()} == {
        "1001": "INCALL", "1002": "PAUSED", "1003": "LOGGEDIN"
    }
    connects = [o for o in snap if o["type"] == "CONNECT"]
    assert [(c["id"], c["agent"]["agentid"]) for c in connects] == [("1795665183.7", "1001")]
    waiting = {o["id"] for o in snap if o["type"] == "CALL" and o["status"] == "QUEUED"}
    assert waiting == {e["Uniqueid"] for e in trace.expected["asterisk_entries_final"]}


def test_retag() -> None:
    msg = Message([("Event", "QueueEntry"), ("ActionID", "cti-2")]).to_bytes()
    assert b"ActionID: svc-9" in retag(msg, "svc-9")
