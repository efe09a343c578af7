"""Issue 10, point 3: one poisoned Redis record cannot spoil a start.

Run 1 follows the ``answered`` trace up to its busiest moment and stops.  Then
Redis is poisoned the way the attack did it: agent 1001's ``since`` becomes
1e18 (agent records are repaired: status since now), today's counters claim more calls answered in SLA than answered, and a
stray entry (no newline) sits in the report outbox.  Run 2 starts on it and
reconciles with the PBX as it is at the end of the trace.  A control run does
the same on an unpoisoned prefix.  The poisoned start must repair or skip the
records, repair the counters, keep the stray entry out of the file, and write
the reconcile's lines as the control does (the repaired agent's with other
times, the skipped call's as the resync sees it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytest_twisted
from store.support import UTC, Rig, assert_redis_is, busiest_cut, trace_events
from twisted.internet import reactor

from callcenter.kpi import Counters, DayBook
from callcenter.report import ReportWriter, is_report_line
from callcenter.store.records import BadRecord, Window, parse_call, repair_counters
from callcenter.store.redis_store import RedisStore
from tests.support.pbxstate import PbxState


async def _start(redis, prefix: str, path: Path, rig: Rig) -> RedisStore:
    writer = ReportWriter(str(path), UTC)
    writer.open()
    store = RedisStore(reactor, redis.url, prefix, rig.center, report=writer)
    await store.load()
    store.start()
    return store


async def _stop(store: RedisStore) -> None:
    await store.flush()
    await store.stop()
    assert store.report is not None
    store.report.close()


async def _run(tmp_path: Path, redis, prefix: str, poison: bool) -> tuple[list[str], Rig]:
    events = trace_events("answered")
    cut = busiest_cut(events)
    path = tmp_path / f"{prefix[:-1]}.csv"
    first = Rig(events[0][0])
    store = await _start(redis, prefix, path, first)
    first.feed(events[:cut])
    await _stop(store)
    if poison:
        key = prefix + "agent:1001"
        record = json.loads(redis.command("GET", key))
        record["since"] = 1e18
        redis.command("SET", key, json.dumps(record))
        day = prefix + "day:" + first.center.book.day
        value = json.loads(redis.command("GET", day))
        for counters in value["record"]["queues"].values():
            counters["answered_in_sla"] = counters["answered"] + 25000
        redis.command("SET", day, json.dumps(value))
        redis.command("RPUSH", prefix + "report:outbox", "2026-12-01 09:00:48;AGENT;103")
    end = Rig(events[0][0])
    end.feed(events)
    second = Rig(first.clock.seconds())
    store = await _start(redis, prefix, path, second)
    second.center.reconcile(*PbxState().feed(events).answers())
    await _stop(store)
    assert_redis_is(redis, second.center, prefix)
    return path.read_text().splitlines(keepends=True), second


@pytest_twisted.ensureDeferred
async def test_a_poisoned_record_is_skipped_and_the_start_writes_all_its_lines(
    tmp_path, redis_server, logs
):
    control, _ = await _run(tmp_path, redis_server, "c:", poison=False)
    poisoned, after = await _run(tmp_path, redis_server, "p:", poison=True)

    assert len(logs.matching("p:agent:1001: since 1e+18 is not a time near now; set to now")) == 1
    assert logs.matching("answered_in_sla") and logs.matching("repaired")
    assert len(logs.matching("is not a report line; skipped")) == 1
    # No stray entry, nothing glued: every line of the file is a whole report line.
    assert all(is_report_line(x) for x in poisoned)
    # The reconcile's lines are all there, as in the control run; agent 1001's
    # status started "now" at the restart, so its line has another time and duration.
    def fields(line: str) -> tuple[str, ...]:
        f = line.split(";")
        return tuple(f[1:4] + f[5:]) if f[1:3] == ["AGENT", "1001"] else tuple(f)

    assert len(control) > 11
    assert [fields(x) for x in poisoned] == [fields(x) for x in control]
    # The repaired day gives percentages a person can believe.
    stats = after.center.stats()
    assert 0 <= stats["sla"] <= 100
    for q in stats["queues"].values():
        assert 0 <= q["sla"] <= 100


def test_calls_and_connections_with_times_far_from_now_are_skipped():
    now = 1_800_000_000.0
    window = Window(now)
    call = {"id": "1.1", "callerid": "5550001", "status": "QUEUED", "since": now - 5,
            "queue": "q", "entered": 1e18, "day": "2027-01-15"}
    with pytest.raises(BadRecord, match="entered"):
        parse_call("1.1", json.dumps(call).encode(), window)
    call["entered"] = now - 5
    assert parse_call("1.1", json.dumps(call).encode(), window).entered == now - 5
    call["since"] = now - 401 * 86400
    with pytest.raises(BadRecord, match="since"):
        parse_call("1.1", json.dumps(call).encode(), window)


def test_day_counters_that_contradict_each_other_are_repaired():
    book = DayBook("2026-12-01", {"q": Counters(received=3, answered=4, answered_in_sla=10,
                                                 completed=9, abandoned=1, abandoned_in_sla=2)})
    fixed = repair_counters(book)
    c = book.queues["q"]
    assert (c.answered_in_sla, c.completed, c.abandoned_in_sla, c.received) == (4, 4, 1, 5)
    assert len(fixed) == 4
    assert repair_counters(book) == []
