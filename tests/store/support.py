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
from callcenter.model import INCALL, NA, QUEUED

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
    assert others <= {prefix + i for i in index.values()}, others


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


def redis_is(redis: Any, center: Callcenter, db: int = 0) -> bool:
    try:
        assert_redis_is(redis, center, db=db)
    except (AssertionError, KeyError):
        return False
    return True


# -- the PBX's answers to QueueStatus / CoreShowChannels ----------------------
# Derived from a Callcenter that followed every event up to some instant (the
# PBX's state then).  Field names and shapes follow the traces' REFERENCE.md
# (gotchas 9 and 11): QueueMember uses Name/Location, a connected caller is no
# QueueEntry but a bridged channel, QueueEntry.Wait is in seconds.

def _hms(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def pbx_status(center: Callcenter) -> tuple[list[Message], list[Message]]:
    now = center.clock.seconds()
    items: list[Message] = []
    channels: list[Message] = []
    for agent in center.agents.values():
        for queue, m in sorted(agent.queues.items()):
            login = str(int(agent.since))
            items.append(
                Message.of(
                    ("Event", "QueueMember"),
                    ("Queue", queue),
                    ("Name", agent.agentid),
                    ("Location", agent.interface),
                    ("StateInterface", agent.interface),
                    ("Membership", "dynamic"),
                    ("CallsTaken", str(agent.calls_taken)),
                    ("LastPause", login if agent.fresh_login else "0"),
                    ("LoginTime", login),
                    ("InCall", "1" if agent.call and agent.call_queue == queue else "0"),
                    ("Status", "2" if agent.call else "1"),
                    ("Paused", "1" if m.paused else "0"),
                    ("PausedReason", m.reason),
                )
            )
    for call in center.calls.values():
        if call.status == QUEUED:
            items.append(
                Message.of(
                    ("Event", "QueueEntry"),
                    ("Queue", call.queue),
                    ("Uniqueid", call.id),
                    ("Channel", call.channel),
                    ("CallerIDNum", call.callerid),
                    ("Wait", str(int(now - (call.entered or now)))),
                )
            )
        if call.status in (NA, QUEUED, INCALL):
            pairs = [
                ("Event", "CoreShowChannel"),
                ("Channel", call.channel),
                ("Uniqueid", call.id),
                ("CallerIDNum", call.callerid),
                ("Application", "Queue" if call.status != NA else "Wait"),
                ("ApplicationData", call.queue),
                ("Duration", _hms(now - (call.entered or call.since))),
            ]
            conn = center.connections.get(call.id)
            if conn is not None:
                pairs.append(("BridgeId", "bridge-" + call.id))
                agent = center.agents[conn.agentid]
                channels.append(
                    Message.of(
                        ("Event", "CoreShowChannel"),
                        ("Channel", agent.interface + "-0000ffff;1"),
                        ("Uniqueid", call.id + "-agent"),
                        ("Application", "AppQueue"),
                        ("Duration", _hms(now - conn.since)),
                        ("BridgeId", "bridge-" + call.id),
                    )
                )
            channels.append(Message.of(*pairs))
    return items, channels
