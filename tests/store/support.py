"""Trace replay into a Callcenter, comparing Redis with memory, and what the
PBX would answer to QueueStatus / CoreShowChannels at some instant."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from support.traces import TRACES
from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock

from callcenter.ami.message import Message, parse_message
from callcenter.center import Callcenter, Changes
from callcenter.kpi import BusinessDay

UTC = ZoneInfo("UTC")
PREFIX = "callcenter:"


def trace_blocks(name: str) -> list[tuple[float, bytes]]:
    """(receive time, wire bytes) of a trace's events; the recording session's own
    login exchange and action answers left out."""
    idx = [json.loads(line) for line in (TRACES / f"{name}.ami.idx.jsonl").read_text().splitlines()]
    data = (TRACES / f"{name}.ami").read_bytes()
    return [
        (i["t"], data[i["off"] : i["off"] + i["len"]])
        for i in idx
        if i["kind"] == "Event" and not i["ActionID"] and i["name"] != "FullyBooted"
    ]


def parse_block(block: bytes) -> Message:
    return parse_message(block.replace(b"\r", b"").rstrip(b"\n"))


def trace_events(name: str) -> list[tuple[float, Message]]:
    """(receive time, message) of a trace's events."""
    return [(t, parse_block(b)) for t, b in trace_blocks(name)]


class Rig:
    """A Callcenter on a Clock, recording what its subscribers saw."""

    def __init__(self, start: float, business_day: BusinessDay | None = None) -> None:
        self.clock = Clock()
        self.clock.advance(start)
        self.center = Callcenter(
            self.clock, sla=10, business_day=business_day or BusinessDay((0, 0), UTC)
        )
        self.changes: list[Changes] = []
        self.lines: list[str] = []
        self.center.subscribe(self._record)

    def _record(self, ch: Changes) -> None:
        self.changes.append(ch)
        self.lines.extend(t.line(UTC) for t in ch.transitions)

    def feed(self, events: Iterable[tuple[float, Message]]) -> None:
        for t, msg in events:
            if t > self.clock.seconds():
                self.clock.advance(t - self.clock.seconds())
            self.center.handle_event(msg)


def state_of(center: Callcenter) -> dict[str, Any]:
    """Everything the store must keep, as plain data."""
    return {
        "agents": {k: a.to_record() for k, a in center.agents.items()},
        "calls": {k: c.to_record() for k, c in center.calls.items()},
        "connections": {k: c.to_record() for k, c in center.connections.items()},
        "book": center.book.to_record(),
        "past": {d: b.to_record() for d, b in center.past.items()},
    }


def assert_redis_is(redis: Any, center: Callcenter, prefix: str = PREFIX, db: int = 0) -> None:
    """Redis holds exactly memory's entities and day counters under ``prefix``."""
    dump = redis.dump(prefix, db)
    kinds = {"agent": center.agents, "call": center.calls, "conn": center.connections}
    index = {"agent": "agents", "call": "calls", "conn": "connections"}
    for kind, live in kinds.items():
        stored = {
            k[len(prefix + kind) + 1 :]: v
            for k, v in dump.items()
            if k.startswith(prefix + kind + ":")
        }
        assert set(stored) == set(live), kind
        for ident, value in stored.items():
            assert json.loads(value) == json.loads(json.dumps(live[ident].to_record())), (
                kind,
                ident,
            )
        assert dump.get(prefix + index[kind], set()) == set(live), index[kind]
    books = dict(center.past)
    books[center.book.day] = center.book
    for day, book in books.items():
        raw = dump.get(prefix + "day:" + day)
        if book.queues or raw is not None:
            stored = json.loads(raw)
            assert stored["record"] == json.loads(json.dumps(book.to_record())), day
            assert stored["summary"] == json.loads(json.dumps(book.summary())), day
            assert stored["finished"] is (day < center.book.day)
    others = set(dump) - {
        k for k in dump if k.startswith(tuple(prefix + p + ":" for p in (*kinds, "day")))
    }
    # The journal marker (the last transaction applied) is bookkeeping, not state;
    # so are the webhooks' outboxes (checked by tests/webhooks), the queue-log
    # cursor (issue 14, queuelog/persist.py) and the PBX counters' baseline
    # (core/pbx_counters.py).
    others = {k for k in others if not k.startswith(prefix + "webhook:")}
    allowed = {
        prefix + "report:applied",
        prefix + "qlog:cursor",
        prefix + "qlog:applied",
        prefix + "pbx:counters",
    }
    assert others <= {prefix + i for i in index.values()} | allowed, others


async def wait_for(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll on the real reactor (state changes come from sockets)."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.02, lambda: None)


def sleep(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


def busiest_cut(events: list[tuple[float, Message]]) -> int:
    """How many events to replay to stop with the most live entities (ties: the first)."""
    rig = Rig(events[0][0])
    best, best_n = 0, -1
    for n, ev in enumerate(events, 1):
        rig.feed([ev])
        c = rig.center
        size = len(c.agents) + len(c.calls) + 2 * len(c.connections)
        if size > best_n:
            best, best_n = n, size
    return best


def state_dump(redis: Any, db: int, prefix: str = PREFIX) -> dict[str, object]:
    """Every key under the prefix but the journal marker (it differs per process)
    and the PBX counters' baseline (it depends on when each run reconciled)."""
    dump = redis.dump(prefix, db)
    dump.pop(prefix + "report:applied", None)
    dump.pop(prefix + "pbx:counters", None)
    return dump


def redis_is(redis: Any, center: Callcenter, db: int = 0) -> bool:
    try:
        assert_redis_is(redis, center, db=db)
    except (AssertionError, KeyError):
        return False
    return True
