"""Restart at many points of the recorded traces, with events missed while down.

The service stops at event ``cut`` (Redis has everything up to it), stays down
while ``gap`` more events happen at the PBX, then loads Redis, reconciles with
the PBX's state at that moment and follows the rest of the trace.  Whatever
the point: every status line at most once, every call counted received once
and answered-or-abandoned at most once, and Redis equal to memory; with no
gap, exactly the uninterrupted run.
"""

from __future__ import annotations

from collections import Counter

import pytest
import pytest_twisted
from twisted.internet import reactor

from callcenter.store.redis_store import RedisStore
from tests.core import traces
from tests.support.pbxstate import PbxState

from .support import Rig, assert_redis_is, trace_events

TRACES = ["answered", "abandon", "ringnoanswer", "pause-during-call", "startup-status.setup"]


def _key(line: str) -> tuple[str, ...]:
    f = line.rstrip("\n").split(";")
    # A call may be in NA twice (the IVR before the queue, and after leaving
    # it unanswered until the hang-up): those periods differ by their start.
    return (f[1], f[2], f[3], f[5], f[6]) + ((f[0],) if f[3] == "NA" else ())


@pytest.mark.parametrize("name", TRACES)
@pytest_twisted.ensureDeferred
async def test_restart_anywhere(redis_server, name):
    events = trace_events(name)
    whole = Rig(events[0][0])
    whole.feed(events)
    total = whole.center.book.total()
    points = [
        (cut, gap) for cut in range(5, len(events), max(1, len(events) // 12)) for gap in (0, 3, 15)
    ]
    for n, (cut, gap) in enumerate(points):
        prefix = f"r{n}:"
        first = Rig(events[0][0])
        store = RedisStore(reactor, redis_server.url, prefix, first.center)
        await store.load()
        store.start()
        first.feed(events[:cut])
        await store.flush()
        await store.stop()

        # The PBX went on while we were down; its answer comes from an
        # independent model of app_queue, not from a Callcenter.
        pbx = PbxState().feed(events[: cut + gap])
        second = Rig(max(pbx.now, first.clock.seconds()))
        store2 = RedisStore(reactor, redis_server.url, prefix, second.center)
        await store2.load()
        store2.start()
        second.center.reconcile(*pbx.answers())
        second.feed(events[cut + gap :])
        second.clock.advance(10)  # let any grace timer run
        await store2.flush()

        where = f"{name} cut={cut} gap={gap}"
        # A call's status ends once (an agent's may legitimately repeat).
        keys = [_key(x) for x in first.lines + second.lines if ";CALL;" in x]
        doubled = [k for k, c in Counter(keys).items() if c > 1]
        assert not doubled, (where, doubled)
        got = second.center.book.total()
        assert got.received == total.received, where
        if gap == 0:
            # Nothing missed: exactly the uninterrupted run.
            assert first.lines + second.lines == whole.lines, (where, first.lines + second.lines)
            assert second.center.book.to_record() == whole.center.book.to_record(), where
            if name in traces.EVENT_TRACES:  # and what Asterisk itself recorded
                outcome = traces.Outcome(second.clock, second.center, first.lines + second.lines)
                traces.check(traces.load(name), outcome)
        else:
            waiting = sum(1 for c in second.center.calls.values() if c.status == "QUEUED")
            assert got.answered + got.abandoned + waiting <= got.received, where
        assert_redis_is(redis_server, second.center, prefix)
        await store2.stop()
