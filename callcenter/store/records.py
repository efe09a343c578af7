"""Key layout and the JSON records kept in Redis, with strict checks on the way in.

Layout under a prefix P (``callcenter:`` by default), one key per entity::

    P agent:<agentid>     string, JSON of Agent.to_record()
    P call:<uniqueid>     string, JSON of Call.to_record()
    P conn:<uniqueid>     string, JSON of Connection.to_record()
    P agents / P calls / P connections   sets of the ids above (the index load reads)
    P day:<YYYY-MM-DD>    string, JSON {"day", "finished", "record": DayBook.to_record(),
                          "summary": DayBook.summary()}
    P report:outbox       list of report lines committed with their event, not yet
                          known to be in the report file (only with a report writer)
    P report:applied      "<epoch>:<seq>" of the last transaction applied, so a start
                          knows which of the local journal's transactions Redis lacks

Values are ASCII JSON, so any id or pause reason the PBX sends survives the
round trip.  Everything read back is checked as strictly as an AMI event: a
record that is not what we wrote is skipped with a reason, never trusted.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from callcenter.kpi import DayBook
from callcenter.model import INCALL, QUEUED, Agent, Call, Connection

AGENT, CALL, CONN = "agent", "call", "conn"
KINDS = (AGENT, CALL, CONN)
INDEX = {AGENT: "agents", CALL: "calls", CONN: "connections"}


class Keys:
    """Builds this prefix's keys as bytes (Redis keys are bytes; ids may be any text)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._p = encode(prefix)
        self.index = {kind: self._p + INDEX[kind].encode() for kind in KINDS}
        self._entity = {kind: self._p + kind.encode() + b":" for kind in KINDS}
        self._day = self._p + b"day:"
        self.outbox = self._p + b"report:outbox"  # report lines in Redis, not yet in the file
        self.applied = self._p + b"report:applied"  # "<epoch>:<seq>" of the last transaction

    def entity(self, kind: str, ident: str) -> bytes:
        return self._entity[kind] + encode(ident)

    def day(self, day: str) -> bytes:
        return self._day + encode(day)


def encode(text: str) -> bytes:
    # The AMI layer decodes with errors="replace", but stay total for any str.
    return text.encode("utf-8", "surrogateescape")


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode("ascii")


def day_value(book: DayBook, finished: bool) -> bytes:
    return dumps(
        {
            "day": book.day,
            "finished": finished,
            "record": book.to_record(),
            "summary": book.summary(),
        }
    )


class BadRecord(ValueError):
    pass


def _loads(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRecord(f"not JSON ({e})") from None
    if not isinstance(value, dict):
        raise BadRecord(f"not a JSON object but {type(value).__name__}")
    return value


def _number(value: Any, name: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRecord(f"{name} is not a number: {value!r:.40}")
    if value < 0:
        raise BadRecord(f"{name} is negative")


_NOT_IN_NAMES = re.compile(r"[\r\n\x00]")


def _queue_name(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value or _NOT_IN_NAMES.search(value):
        raise BadRecord(f"{name} is not a queue name: {value!r:.40}")


def parse_agent(ident: str, raw: bytes) -> Agent:
    d = _loads(raw)
    queues = d.get("queues")
    if not isinstance(queues, dict) or not all(isinstance(m, dict) for m in queues.values()):
        raise BadRecord("queues is missing or not an object of memberships")
    for q in queues:
        _queue_name(q, "queue")
    try:
        agent = Agent.from_record(d)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise BadRecord(str(e)) from None
    _same_id(agent.agentid, ident)
    _number(agent.since, "since")
    for name in ("calls_taken", "talk_time"):
        value = getattr(agent, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadRecord(f"{name} is not a whole number: {value!r:.40}")
    if agent.call is not None and not isinstance(agent.call, str):
        raise BadRecord("call is not a call id")
    if not isinstance(agent.fresh_login, bool) or not isinstance(agent.since_queue, str):
        raise BadRecord("fresh_login/since_queue have the wrong type")
    return agent


def parse_call(ident: str, raw: bytes) -> Call:
    d = _loads(raw)
    try:
        call = Call.from_record(d)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise BadRecord(str(e)) from None
    _same_id(call.id, ident)
    _number(call.since, "since")
    _number(call.entered, "entered", optional=True)
    _number(call.answered, "answered", optional=True)
    _number(call.hold, "hold", optional=True)
    if call.agent is not None and not isinstance(call.agent, str):
        raise BadRecord("agent is not an agent id")
    if not isinstance(call.left, bool):
        raise BadRecord("left is not a boolean")
    if call.status in (QUEUED, INCALL):
        # Counted calls: the queue and business day their KPIs belong to must be known.
        _queue_name(call.queue, "queue")
        if not call.day or call.entered is None:
            raise BadRecord(f"{call.status} call without its queue entry day/time")
    return call


def parse_connection(ident: str, raw: bytes) -> Connection:
    d = _loads(raw)
    try:
        conn = Connection.from_record(d)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise BadRecord(f"{type(e).__name__}: {e}") from None
    _same_id(conn.id, ident)
    _queue_name(conn.queue, "queue")
    _number(conn.since, "since")
    return conn


def parse_day(day: str, raw: bytes) -> tuple[DayBook, bool]:
    d = _loads(raw)
    record = d.get("record")
    if not isinstance(record, dict) or not isinstance(record.get("queues"), dict):
        raise BadRecord("record.queues is missing")
    for q, c in record["queues"].items():
        _queue_name(q, "queue")
        if not isinstance(c, dict):
            raise BadRecord(f"counters of {q} are not an object")
        for name, value in c.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadRecord(f"counter {q}.{name} is not a whole number")
    try:
        book = DayBook.from_record(record)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise BadRecord(str(e)) from None
    if book.day != day:
        raise BadRecord(f"holds day {book.day!r}")
    return book, d.get("finished") is True


def _same_id(found: str, ident: str) -> None:
    if found != ident:
        raise BadRecord(f"holds id {found!r:.40}")
