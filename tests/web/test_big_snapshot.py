"""A real call center's HELLO snapshot is far larger than the 4 KiB limit on
what dashboards may send: it must still go out whole (found on the demo)."""

from __future__ import annotations

import json

import pytest_twisted

from .support import find


@pytest_twisted.ensureDeferred
async def test_hello_snapshot_larger_than_the_incoming_frame_limit(rig):
    agents = [str(2000 + n) for n in range(40)]
    await rig.feed(*(rig.peer.login(a) for a in agents))
    callers = [rig.peer.new_uid() for _ in range(20)]
    await rig.feed(*(rig.peer.join(uid, f"55512{n:03d}") for n, uid in enumerate(callers)))
    c = await rig.client()
    frame = await c.hello()
    size = len("\n".join(json.dumps(o) for o in frame).encode())
    assert size > 2 * 4096
    assert len([o for o in frame if o["type"] == "AGENT"]) == 40
    assert all(find(frame, "CALL", id=uid) for uid in callers)
    # An ERROR answer still goes to the client, and a big push too.
    c.send("PAUSE:")
    errors = await c.until(lambda f: any(o["type"] == "ERROR" for o in f))
    assert errors
