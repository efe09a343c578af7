"""A dashboard that floods commands is slowed down, then cut off; others are not."""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from callcenter.web.protocol import COMMAND_ABUSE, COMMAND_BURST


def _objects(payload: bytes) -> list[dict]:
    return [json.loads(line) for line in payload.decode().split("\n") if line]


@pytest_twisted.ensureDeferred
async def test_a_hello_flood_is_rate_limited_then_cut_off(rig):
    calm = await rig.client()
    await calm.hello()
    flood = await rig.client()
    for _ in range(COMMAND_BURST * 3):
        flood.send("HELLO")
    await deferLater(reactor, 0.3, lambda: None)
    frames = []
    while flood.frames.pending:
        frames.append(_objects(flood.frames.pending.pop(0)))
    snapshots = [f for f in frames if f and f[0]["type"] == "CONFIG"]
    errors = [o for f in frames for o in f if o["type"] == "ERROR"]
    # One snapshot: HELLOs within a second of the last wait for the second's end
    # and share one answer; the command rate limit refuses the rest (said once).
    assert len(snapshots) == 1
    assert [e["message"] for e in errors] == ["too many commands: at most 10 a second"]
    # Keep flooding: the client is cut off with 1008, the calm one still works.
    for _ in range(COMMAND_ABUSE + 10):
        flood.send("HELLO")
    code, _reason = await flood.closed
    assert code == 1008
    calm.send("HELLO")
    frame = await calm.frame()
    assert [o["type"] for o in frame[:2]] == ["CONFIG", "STATS"]


@pytest_twisted.ensureDeferred
async def test_a_flood_read_in_bursts_is_still_cut_off(rig):
    """A token or two refilled between bursts (as when a busy reactor reads
    the flood in pieces) does not start the count of refusals again."""
    flood = await rig.client()
    await flood.hello()
    burst = 30  # more than COMMAND_BURST: most of each burst is refused
    for _ in range(3 * COMMAND_ABUSE // burst):
        if flood.closed.called:
            break
        for _ in range(burst):
            flood.send("HELLO")
        await deferLater(reactor, 0.15, lambda: None)  # 1.5 tokens come back: not calm
    assert flood.closed.called, "a flood paced in bursts was never cut off"
    code, _reason = await flood.closed
    assert code == 1008
