"""The business day: counters reset at the boundary, finished days kept under dated keys."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import pytest_twisted
from twisted.internet import reactor

from callcenter.kpi import BusinessDay
from callcenter.store.redis_store import DOWN, UP, RedisStore

from . import events as ev
from .support import Rig, assert_redis_is, wait_for

CASES = [
    ("UTC", (0, 0)),
    ("UTC", (6, 0)),
    ("Europe/Paris", (6, 0)),  # a local boundary that is not on a UTC hour
]


def _day_key(redis, day: str) -> dict:
    return json.loads(redis.command("GET", f"callcenter:day:{day}"))


@pytest.mark.parametrize(("zone", "starts_at"), CASES)
@pytest_twisted.ensureDeferred
async def test_day_boundary(redis_server, zone, starts_at):
    tz = ZoneInfo(zone)
    bday = BusinessDay(starts_at, tz)
    # The boundary that ends business day 2026-11-26.
    boundary = datetime(2026, 11, 27, *starts_at, tzinfo=tz).timestamp()
    assert bday.day_of(boundary - 1) == "2026-11-26" and bday.day_of(boundary) == "2026-11-27"

    rig = Rig(boundary - 3600, bday)
    store = RedisStore(reactor, redis_server.url, "callcenter:", rig.center)
    await store.load()
    store.start()
    rig.center.start()  # the business-day timer
    b = boundary
    rig.feed(
        [
            ev.member_added(b - 600, "1001"),
            ev.join(b - 500, "c1"),
            ev.abandon(b - 480, "c1", hold=20),
            ev.join(b - 60, "c2"),  # waits across the boundary
        ]
    )
    assert rig.center.stats()["calls_received"] == 2
    rig.clock.advance(b + 1 - rig.clock.seconds())  # the timer turns the day
    stats = rig.center.stats()
    assert stats["day"] == "2026-11-27"
    assert (stats["calls_received"], stats["calls_abandoned"]) == (0, 0)
    assert stats["calls_waiting"] == 1  # c2 is still there, just not today's count
    assert any(book.day == "2026-11-26" for ch in rig.changes for book in ch.rolled)
    await store.flush()
    finished = _day_key(redis_server, "2026-11-26")
    assert finished["finished"] is True
    assert finished["summary"]["calls_received"] == 2
    assert finished["summary"]["calls_abandoned"] == 1

    rig.feed(
        [
            ev.connect(b + 30, "c2", "1001", hold=90),  # answered after the boundary...
            ev.join(b + 40, "c3"),
            ev.abandon(b + 45, "c3", hold=5),
            ev.complete(b + 100, "c2", "1001", hold=90, talk=70),
        ]
    )
    await store.flush()
    old, new = _day_key(redis_server, "2026-11-26"), _day_key(redis_server, "2026-11-27")
    # ...and counted once, in the day it entered the queue.
    assert old["summary"]["calls_received"] == 2
    assert old["summary"]["calls_answered"] == 1
    assert old["summary"]["average_queue_time"] == 90
    assert old["summary"]["average_handle_time"] == 70
    assert old["summary"]["queues"]["q-callcenter"]["calls_answered"] == 1
    assert new["finished"] is False
    assert (new["summary"]["calls_received"], new["summary"]["calls_abandoned"]) == (1, 1)
    assert new["summary"]["calls_answered"] == 0
    stats = rig.center.stats()
    assert (stats["day"], stats["calls_received"], stats["calls_answered"]) == ("2026-11-27", 1, 0)
    assert_redis_is(redis_server, rig.center)
    await store.stop()
    rig.center.stop()

    # A restart later that day gets both days back.
    again = Rig(b + 3600, bday)
    store2 = RedisStore(reactor, redis_server.url, "callcenter:", again.center)
    await store2.load()
    assert again.center.stats() == rig.center.stats()
    assert again.center.past["2026-11-26"].to_record() == rig.center.past["2026-11-26"].to_record()
    await store2.stop()


@pytest_twisted.ensureDeferred
async def test_restart_after_the_boundary_finishes_the_day(redis_server):
    """Down across the boundary: the day that ended meanwhile is marked finished at load."""
    bday = BusinessDay((0, 0), ZoneInfo("UTC"))
    b = datetime(2026, 11, 27, tzinfo=ZoneInfo("UTC")).timestamp()
    rig = Rig(b - 3600, bday)
    store = RedisStore(reactor, redis_server.url, "callcenter:", rig.center)
    await store.load()
    store.start()
    # A real abandon: the caller's hang-up first (a bare QueueCallerAbandon may be a
    # timeout, decided only after flow.EXIT_WINDOW; this process stops at once).
    rig.feed([ev.join(b - 100, "c1"), ev.hangup_request(b - 90, "c1"), ev.abandon(b - 90, "c1", hold=10)])
    await store.flush()
    await store.stop()
    assert _day_key(redis_server, "2026-11-26")["finished"] is False

    again = Rig(b + 7200, bday)
    store2 = RedisStore(reactor, redis_server.url, "callcenter:", again.center)
    await store2.load()
    await store2.flush()
    stats = again.center.stats()
    assert (stats["day"], stats["calls_received"]) == ("2026-11-27", 0)
    kept = _day_key(redis_server, "2026-11-26")
    assert kept["finished"] is True and kept["summary"]["calls_abandoned"] == 1
    assert again.center.past["2026-11-26"].total().received == 1
    await store2.stop()


@pytest_twisted.ensureDeferred
async def test_day_turns_while_redis_is_down(redis_server):
    bday = BusinessDay((6, 0), ZoneInfo("UTC"))
    b = datetime(2026, 11, 27, 6, tzinfo=ZoneInfo("UTC")).timestamp()
    rig = Rig(b - 600, bday)
    store = RedisStore(reactor, redis_server.url, "callcenter:", rig.center)
    store.initial_delay = 0.05
    await store.load()
    store.start()
    rig.center.start()
    rig.feed([ev.member_added(b - 500, "1001"), ev.join(b - 400, "c1")])
    await store.flush()
    redis_server.stop()
    await wait_for(lambda: store.state == DOWN, what="outage")
    rig.feed([ev.abandon(b - 300, "c1", hold=100), ev.join(b - 10, "c2")])
    rig.clock.advance(b + 5 - rig.clock.seconds())  # the day turns, Redis still down
    rig.feed([ev.connect(b + 20, "c2", "1001", hold=30), ev.join(b + 30, "c3")])
    redis_server.start()
    await wait_for(lambda: store.state == UP and store.full_syncs >= 1, what="reconnect")
    await store.flush()
    old, new = _day_key(redis_server, "2026-11-26"), _day_key(redis_server, "2026-11-27")
    assert old["finished"] is True and new["finished"] is False
    assert (old["summary"]["calls_received"], old["summary"]["calls_abandoned"]) == (2, 1)
    assert old["summary"]["calls_answered"] == 1  # c2 entered before 06:00
    assert new["summary"]["calls_received"] == 1
    assert_redis_is(redis_server, rig.center)
    await store.stop()
    rig.center.stop()
