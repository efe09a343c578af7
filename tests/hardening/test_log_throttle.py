"""Issue 10, point 7: one rate limiter for repeated warnings, used everywhere.

Unit tests of ``callcenter.logthrottle`` on a Clock, the Redis start's bad-key
warnings (a real redis-server holding 500 bad records), and the options that
carry every new bound.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.logger import Logger

from callcenter.center import Callcenter
from callcenter.logthrottle import LOG_INTERVAL, LogThrottle
from callcenter.options import Options
from callcenter.store import journal, records
from callcenter.store.redis_store import RedisStore
from callcenter.web import limits

log = Logger(namespace="test.throttle")


def test_a_flood_is_one_line_per_kind_then_one_count_per_interval(logs):
    clock = Clock()
    throttle = LogThrottle(log, clock, interval=60)
    for i in range(1000):
        throttle.warn("a", "kind A number {i}", i=i)
        throttle.warn("b", "kind B number {i}", i=i)
    assert len(logs.matching("kind A")) == 1 and len(logs.matching("kind B")) == 1
    clock.advance(60)  # the count comes on time, even if the flood has stopped
    assert logs.matching("999 more like this in the last 60 s: kind A number 999")
    assert logs.matching("999 more like this in the last 60 s: kind B number 999")
    throttle.warn("a", "kind A again")
    assert logs.matching("kind A again")  # a new interval starts with a full line
    clock.advance(60)
    assert len(logs.matching("more like this")) == 2  # nothing suppressed, no count


def test_burst_and_flush(logs):
    throttle = LogThrottle(log, Clock(), interval=10, burst=3)
    for i in range(10):
        throttle.error("k", "line {i}", i=i)
    assert len(logs.matching("line")) == 3
    throttle.flush()
    assert logs.matching("7 more like this in the last 10 s: line 9")


@pytest_twisted.ensureDeferred
async def test_five_hundred_bad_redis_keys_are_twenty_lines_and_a_count(redis_server, logs):
    for i in range(500):
        redis_server.command("SET", f"lt:agent:{i}", "{not json")
        redis_server.command("SADD", "lt:agents", str(i))
    center = Callcenter(reactor, sla=10)
    store = RedisStore(reactor, redis_server.url, "lt:", center)
    await store.load()
    await store.flush()
    await store.stop()
    assert len(logs.matching("not JSON")) == 21, logs.lines()[-5:]  # 20 in full, then the count
    assert logs.matching("480 more like this")
    assert redis_server.command("SCARD", "lt:agents") == 0  # and they were cleaned up


def test_every_new_bound_has_an_option_with_its_constant_as_default():
    opts = Options(environ={})
    defaults = {long: default for long, _s, default, _d in opts.optParameters}
    expected = {
        "report-wait": journal.REPORT_WAIT,
        "max-record-age": records.MAX_RECORD_AGE / 86400,
        "max-connections": limits.MAX_CONNECTIONS,
        "max-per-address": limits.MAX_PER_ADDRESS,
        "fd-reserve": limits.FD_RESERVE,
        "hello-interval": limits.HELLO_INTERVAL,
        "stats-interval": limits.STATS_INTERVAL,
        "request-timeout": limits.REQUEST_TIMEOUT,
        "max-body": limits.MAX_BODY,
        "log-interval": LOG_INTERVAL,
    }
    for name, constant in expected.items():
        assert float(defaults[name]) == constant, name
        assert f"CALLCENTER_{name.upper().replace('-', '_')}" in opts.docs[name]
    env = Options(environ={"CALLCENTER_MAX_CONNECTIONS": "7", "CALLCENTER_REPORT_FSYNC": "off"})
    env.parseOptions(["--simulate", "--report", "/dev/null"])
    assert env["max-connections"] == 7 and env["report-fsync"] is False
