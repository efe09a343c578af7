"""Loading: bad contents are skipped, an unreachable Redis never stops the start."""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import reactor
from twisted.protocols.portforward import ProxyFactory

from callcenter.ami.message import Message
from callcenter.model import QUEUED, Agent, Call, Membership
from callcenter.store.redis_store import UP, RedisStore
from tests.support.pbxstate import PbxState

from .conftest import free_port
from .support import Rig, assert_redis_is, busiest_cut, trace_events, wait_for

T0 = 1795665000.0
TODAY = "2026-11-26"


def _agent(agentid: str, **kw) -> str:
    a = Agent(
        agentid=agentid,
        interface=f"Local/{agentid}@agent-connect",
        status="AVAIL",
        since=T0,
        queues={"q-callcenter": Membership()},
        since_queue="q-callcenter",
        **kw,
    )
    return json.dumps(a.to_record())


def _call(uid: str, **kw) -> str:
    fields = {
        "callerid": "5550001",
        "status": QUEUED,
        "since": T0,
        "queue": "q-callcenter",
        "entered": T0,
        "day": TODAY,
    } | kw
    return json.dumps(Call(id=uid, **fields).to_record())


@pytest_twisted.ensureDeferred
async def test_bad_contents_are_logged_and_skipped(redis_server, logs):
    r = redis_server.command
    r(
        "SADD",
        "callcenter:agents",
        "good",
        "hash",
        "badjson",
        "nofield",
        "mismatch",
        "absent",
        "negative",
        "list",
        "badstatus",
        "huge",
    )
    r("SET", "callcenter:agent:good", _agent("good"))
    r("HSET", "callcenter:agent:hash", "agentid", "hash")
    r("SET", "callcenter:agent:badjson", "{not json")
    r("SET", "callcenter:agent:nofield", json.dumps({"interface": "x", "queues": {}}))
    r("SET", "callcenter:agent:mismatch", _agent("someone-else"))
    r("SET", "callcenter:agent:negative", _agent("negative", calls_taken=-3))
    r("SET", "callcenter:agent:list", "[1, 2]")
    r("SET", "callcenter:agent:badstatus", _agent("badstatus").replace('"AVAIL"', '"DANCING"'))
    # A 400-digit integer is valid JSON; float() of it raised OverflowError and aborted the load.
    r("SET", "callcenter:agent:huge", _agent("huge").replace(f"{T0}", "9" * 400, 1))
    r("SADD", "callcenter:calls", "ok.1", "unknownq.2", "noqueue.3", "noday.4", "text.5", "nan.6",
      "huge.7")
    r("SET", "callcenter:call:ok.1", _call("ok.1"))
    r("SET", "callcenter:call:unknownq.2", _call("unknownq.2", queue="q-nobody-has"))
    r("SET", "callcenter:call:noqueue.3", _call("noqueue.3", queue=""))
    r("SET", "callcenter:call:noday.4", _call("noday.4", day=""))
    r("SET", "callcenter:call:text.5", "hello")
    r("SET", "callcenter:call:nan.6", _call("nan.6").replace(f"{T0}", "NaN", 1))
    r("SET", "callcenter:call:huge.7", _call("huge.7", hold=10**400))
    r("SET", "callcenter:connections", "not a set")  # an index of the wrong type
    r("SET", "callcenter:conn:ok.1", json.dumps({"id": "ok.1"}))
    r("SET", f"callcenter:day:{TODAY}", "{{{")
    r("RPUSH", "callcenter:day:2026-11-25", "a list")

    rig = Rig(T0 + 60)
    store = RedisStore(reactor, redis_server.url, "callcenter:", rig.center)
    await store.load()  # never fails
    store.start()
    assert sorted(rig.center.agents) == ["good"]
    assert sorted(rig.center.calls) == ["ok.1", "unknownq.2"]
    assert rig.center.book.total().received == 0  # today's key was unreadable: from zero
    text = "\n".join(logs.lines())
    for key, why in [
        ("agent:hash", "a hash, not a string"),
        ("agent:badjson", "not JSON"),
        ("agent:nofield", "agentid"),
        ("agent:mismatch", "holds id"),
        ("agent:negative", "calls_taken"),
        ("agent:list", "not a JSON object"),
        ("agent:badstatus", "DANCING"),
        ("agent:absent", "missing"),
        ("call:noqueue.3", "not a queue name"),
        ("call:noday.4", "without its queue entry day"),
        ("call:text.5", "not JSON"),
        ("call:nan.6", "since"),
        ("agent:huge", "too large"),
        ("call:huge.7", "hold"),
        ("callcenter:connections", "not a set"),
        (f"day:{TODAY}", "not JSON"),
        ("day:2026-11-25", "a list, not a string"),
    ]:
        assert any(key in line and why in line for line in text.splitlines()), (key, why)
    # The bad index made the store rewrite this prefix: Redis now equals memory.
    await wait_for(lambda: store.state == UP and store.full_syncs == 1, what="rewrite")
    await store.flush()
    assert_redis_is(redis_server, rig.center)
    assert (
        r("TYPE", "callcenter:day:2026-11-25") == "list"
    )  # history is left for a person to look at

    # The call in a queue the PBX does not have is closed by the reconcile, once.
    for wait in ("60", "61"):  # twice, as after an AMI reconnect
        rig.center.reconcile(
            [
                Message.of(
                    ("Event", "QueueMember"),
                    ("Queue", "q-callcenter"),
                    ("Name", "good"),
                    ("Location", "Local/good@agent-connect"),
                    ("Paused", "0"),
                    ("InCall", "0"),
                ),
                Message.of(
                    ("Event", "QueueEntry"),
                    ("Queue", "q-callcenter"),
                    ("Uniqueid", "ok.1"),
                    ("Wait", wait),
                ),
            ],
            [],
        )
    assert sorted(rig.center.calls) == ["ok.1"]
    assert [line.split(";")[3:5] + [line.split(";")[6].strip()] for line in rig.lines] == [
        ["QUEUED", "60", "unknownq.2"]
    ]
    assert rig.center.book.total().abandoned == 1
    await store.flush()
    assert_redis_is(redis_server, rig.center)
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_bad_index_members_only_and_restore_drops(redis_server):
    """A connection whose agent is gone is dropped by restore; Redis follows memory."""
    r = redis_server.command
    r("SADD", "callcenter:agents", "1001")
    r("SET", "callcenter:agent:1001", _agent("1001", call="x.1", call_queue="q-callcenter"))
    r("SADD", "callcenter:calls", "x.1")
    r(
        "SET",
        "callcenter:call:x.1",
        _call("x.1", status="INCALL", agent="1002", answered=T0 + 5, hold=5),
    )
    r("SADD", "callcenter:connections", "x.1")
    r(
        "SET",
        "callcenter:conn:x.1",
        json.dumps({"id": "x.1", "agentid": "1002", "queue": "q-callcenter", "since": T0 + 5}),
    )
    rig = Rig(T0 + 60)
    store = RedisStore(reactor, redis_server.url, "callcenter:", rig.center)
    await store.load()
    assert rig.center.connections == {}
    assert rig.center.agents["1001"].call is None
    await store.flush()
    assert_redis_is(redis_server, rig.center)
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_unreachable_at_start_then_merge_saved_kpis(redis_server, logs):
    """Redis down when the service starts: it starts empty, serves, and when Redis
    answers the day's saved counters are merged, not overwritten."""
    events = trace_events("answered")
    whole = Rig(events[0][0])
    whole.feed(events)
    cut = busiest_cut(events)

    before = Rig(events[0][0])
    s1 = RedisStore(reactor, redis_server.url, "callcenter:", before.center)
    await s1.load()
    s1.start()
    before.feed(events[:cut])
    await s1.flush()
    await s1.stop()
    live = [c.status for c in before.center.calls.values()]
    assert "INCALL" in live and "QUEUED" in live

    port = free_port()  # nothing listens there yet
    after = Rig(before.clock.seconds())
    s2 = RedisStore(reactor, f"redis://127.0.0.1:{port}/0", "callcenter:", after.center)
    s2.initial_delay = s2.max_delay = 0.1
    await s2.load()
    s2.start()
    lines = logs.matching("not available")
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "empty state" in lines[0]
    # The AMI resync finds the PBX's live calls and counts them again; then the rest.
    items, channels = PbxState().feed(events[:cut]).answers()
    after.center.reconcile(items, channels)
    after.feed(events[cut:])
    assert len(logs.matching("not available")) == 1

    proxy = reactor.listenTCP(
        port, ProxyFactory("127.0.0.1", redis_server.port), interface="127.0.0.1"
    )
    try:
        await wait_for(lambda: s2.state == UP and s2.full_syncs == 1, what="late load")
        await s2.flush()
        assert after.center.book.to_record() == whole.center.book.to_record()
        assert after.center.stats() == whole.center.stats()
        assert_redis_is(redis_server, after.center)
        assert logs.matching("merged the saved KPIs")
        await s2.stop()
    finally:
        await proxy.stopListening()


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_one_clear_line(tmp_path, logs):
    from .conftest import RedisServer

    server = RedisServer(tmp_path, extra=("--requirepass", "right"))
    server.start()
    try:
        rig = Rig(T0)
        store = RedisStore(reactor, f"redis://:wrong@127.0.0.1:{server.port}/0", "cc:", rig.center)
        await store.load()
        lines = logs.matching("not available")
        assert len(lines) == 1 and "wrong" not in lines[0] and "***" in lines[0]
        assert "WRONGPASS" in lines[0] or "invalid" in lines[0].lower()
        await store.stop()

        ok = RedisStore(reactor, f"redis://:right@127.0.0.1:{server.port}/3", "cc:", rig.center)
        await ok.load()
        ok.start()
        assert ok.state == UP
        await ok.stop()
    finally:
        server.stop()


def test_an_absurd_number_in_any_field_is_a_bad_record_never_a_crash():
    """Every numeric field of every kind, set to what JSON allows and we never write."""
    from callcenter.store.records import (
        BadRecord,
        Window,
        parse_agent,
        parse_call,
        parse_connection,
        parse_day,
    )

    window = Window(T0)
    agent = json.loads(_agent("a", pause_time={"lunch": 5}))
    call = json.loads(_call("c.1", status="INCALL", answered=T0, hold=3, agent="a"))
    conn = {"id": "c.1", "agentid": "a", "queue": "q-callcenter", "since": T0}
    day = {"day": TODAY, "record": {"day": TODAY, "queues": {"q-callcenter": {"received": 1}}}}
    absurd = [10**400, -(10**400), 2**53 + 1, 1e308 * 10, float("nan"), True, "7", None]

    def poisoned(record, path):
        for bad in absurd:
            copy = json.loads(json.dumps(record))
            node = copy
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = bad
            yield json.dumps(copy).encode()

    cases = [(parse_agent, "a", agent, (k,)) for k, v in agent.items()
             if isinstance(v, int | float) and not isinstance(v, bool)]
    cases += [(parse_agent, "a", agent, ("pause_time", "lunch"))]
    cases += [(parse_call, "c.1", call, (k,)) for k, v in call.items()
              if isinstance(v, int | float) and not isinstance(v, bool)]
    cases += [(parse_call, "c.1", call, ("left_at",)), (parse_connection, "c.1", conn, ("since",))]
    cases += [(lambda i, raw, w: parse_day(i, raw), TODAY, day,
               ("record", "queues", "q-callcenter", "received"))]
    assert len(cases) > 12
    def numbers(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from numbers(v)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield value

    for parse, ident, record, path in cases:
        for raw in poisoned(record, path):
            try:
                loaded = parse(ident, raw, window)
            except BadRecord:
                continue
            obj = loaded[0] if isinstance(loaded, tuple) else loaded
            # Accepted only as something sane (repaired, or None where optional).
            assert all(0 <= n <= 2**53 for n in numbers(obj.to_record())), (path, raw[:80])


def test_a_record_we_wrote_and_an_older_or_reordered_one_restore_alike():
    """What ``to_record`` wrote takes the fast path (the decoded values keyed by
    the field names); a record missing a newer field, or in another order, goes
    through the dataclass; both give the entity that was saved."""
    from callcenter.model import Agent, Call
    from callcenter.store.records import Window, parse_agent, parse_call

    agent = Agent("1001", "PJSIP/1001", "INCALL", T0, queues={"q-callcenter": Membership(True, "Lunch", 5)},
                  call="c.1", call_queue="q-callcenter", calls_taken=2, talk_time=40,
                  since_queue="q-callcenter", pause_time={"Lunch": 30})
    call = Call("c.1", "5550001", "INCALL", T0, "q-callcenter", entered=T0 - 3, answered=T0,
                agent="1001", day=TODAY, hold=3)
    window = Window(T0)
    for entity, parse in ((agent, parse_agent), (call, parse_call)):
        record = entity.to_record()
        ident = record.get("agentid") or record["id"]
        older = {k: v for k, v in record.items() if k not in ("position", "pause_time")}
        reordered = dict(reversed(list(record.items())))
        for variant in (record, older, reordered):
            back = parse(ident, json.dumps(variant).encode(), window)
            expect = type(entity)(**{**_defaults(entity), **{k: getattr(entity, k) for k in variant}})
            assert back == expect
            assert [k for k in vars(back)] == [k for k in vars(expect)]  # field order, field names
        assert all(a is b for a, b in zip(vars(parse(ident, json.dumps(record).encode(), window)),
                                          vars(entity), strict=True))


def _defaults(entity) -> dict:
    from dataclasses import MISSING, fields

    out = {}
    for f in fields(entity):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out
