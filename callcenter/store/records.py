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
    P pbx:counters        JSON of core.pbx_counters.Baseline.to_record(): Asterisk's
                          queue counters and ours at the last reconcile

Values are ASCII JSON, so any id or pause reason the PBX sends survives the
round trip.  Everything read back is checked as strictly as an AMI event: a
record that is not what we wrote is skipped with a reason, never trusted.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from callcenter.ami.events import MAX_REASON
from callcenter.core.counting import MAX_PAUSE_REASONS
from callcenter.kpi import DayBook
from callcenter.model import INCALL, QUEUED, Agent, Call, Connection

AGENT, CALL, CONN = "agent", "call", "conn"
# A saved time further from now than this is not ours (a poisoned or corrupt
# record: ``since: 1e18`` would break every report line and STATS built on it).
MAX_RECORD_AGE = 400 * 86400.0  # seconds back (--max-record-age, in days)
MAX_RECORD_AHEAD = 86400.0  # seconds ahead: the same day of slack as AMI Timestamps
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
        self.counters = self._p + b"pbx:counters"  # the PBX counters' baseline

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


class Window:
    """The times a loaded record may hold: ``[now - max_age, now + MAX_RECORD_AHEAD]``."""

    def __init__(self, now: float, max_age: float = MAX_RECORD_AGE) -> None:
        self.now = now
        self.low = now - max_age
        self.high = now + MAX_RECORD_AHEAD
        self.repairs: list[str] = []  # what was repaired in the last record parsed

    def repair_time(self, value: float, name: str) -> float:
        """A status start time out of the window becomes now (and is noted)."""
        if self.low <= value <= self.high:
            return value
        self.repairs.append(f"{name} {value!r:.24} is not a time near now; set to now")
        return self.now

    def check(self, value: float | None, name: str) -> None:
        if value is not None and not self.low <= value <= self.high:
            raise BadRecord(f"{name} {value!r:.24} is not a time near now")

    def seconds(self, value: float | int | None, name: str) -> None:
        """A duration: at most the window's length."""
        if value is not None and value > self.high - self.low:
            raise BadRecord(f"{name} {value!r:.24} is longer than any record can be")


# One decoder, called directly: json.loads' own checks and encoding sniffing
# cost a quarter of the decode over the 30,000 records of a 10,000-agent start.
_DECODER = json.JSONDecoder()


def _loads(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        try:  # what we write: one JSON value, no white space around it
            value, end = _DECODER.raw_decode(text)
        except json.JSONDecodeError:
            end = -1
        if end != len(text):
            value = _DECODER.decode(text)  # anything else: exactly json.loads' answer
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRecord(f"not JSON ({e})") from None
    if not isinstance(value, dict):
        raise BadRecord(f"not a JSON object but {type(value).__name__}")
    return value


# No count or number of seconds we write comes near this; a JSON integer beyond
# it is not ours, and float arithmetic on it (an average) raises OverflowError.
MAX_WHOLE = 2**53


def _number(value: Any, name: str, optional: bool = False) -> None:
    cls = value.__class__
    if (cls is float and 0 <= value < math.inf) or (cls is int and 0 <= value <= MAX_WHOLE):
        return  # what we write (JSON gives exactly these types)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRecord(f"{name} is not a number: {value!r:.40}")
    if isinstance(value, int) and value > MAX_WHOLE or isinstance(value, float) and not math.isfinite(value):
        raise BadRecord(f"{name} is not a number: {value!r:.40}")
    if value < 0:
        raise BadRecord(f"{name} is negative")


def _whole(value: Any) -> bool:
    """A count or whole seconds as we write them."""
    return not isinstance(value, bool) and isinstance(value, int) and 0 <= value <= MAX_WHOLE


_NOT_IN_NAMES = re.compile(r"[\r\n\x00]")


def _queue_name(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value or _NOT_IN_NAMES.search(value):
        raise BadRecord(f"{name} is not a queue name: {value!r:.40}")


def parse_agent(ident: str, raw: bytes, window: Window | None = None) -> Agent:
    d = _loads(raw)
    queues = d.get("queues")
    if not isinstance(queues, dict) or not all(isinstance(m, dict) for m in queues.values()):
        raise BadRecord("queues is missing or not an object of memberships")
    for q in queues:
        _queue_name(q, "queue")
    try:
        agent = Agent.from_record(d, own=True)  # d is ours alone
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
        raise BadRecord(str(e)) from None
    _same_id(agent.agentid, ident)
    _number(agent.since, "since")
    for name in ("calls_taken", "talk_time"):
        value = getattr(agent, name)
        if not _whole(value):
            raise BadRecord(f"{name} is not a whole number: {value!r:.40}")
    _pause_time(agent.pause_time)
    if agent.call is not None and not isinstance(agent.call, str):
        raise BadRecord("call is not a call id")
    if not isinstance(agent.fresh_login, bool) or not isinstance(agent.since_queue, str):
        raise BadRecord("fresh_login/since_queue have the wrong type")
    if window is not None:
        # Only the current status's duration depends on it: repaired, not
        # skipped, so the agent's calls and connection survive the start.
        agent.since = window.repair_time(agent.since, "since")
        window.seconds(agent.talk_time, "talk_time")
    return agent


def _pause_time(value: Any) -> None:
    """Seconds by pause reason: a small object of whole numbers (counting.count_pause)."""
    if not isinstance(value, dict) or len(value) > MAX_PAUSE_REASONS + 1:
        raise BadRecord("pause_time is not an object of pause reasons")
    for reason, seconds in value.items():
        if not isinstance(reason, str) or len(reason) > MAX_REASON or _NOT_IN_NAMES.search(reason):
            raise BadRecord(f"pause_time has a bad reason: {reason!r:.40}")
        if not _whole(seconds):
            raise BadRecord(f"pause_time of {reason!r:.40} is not a whole number")


def parse_call(ident: str, raw: bytes, window: Window | None = None) -> Call:
    d = _loads(raw)
    try:
        call = Call.from_record(d, own=True)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
        raise BadRecord(str(e)) from None
    _same_id(call.id, ident)
    _number(call.since, "since")
    _number(call.entered, "entered", optional=True)
    _number(call.answered, "answered", optional=True)
    _number(call.hold, "hold", optional=True)
    _number(call.left_at, "left_at", optional=True)
    if call.agent is not None and not isinstance(call.agent, str):
        raise BadRecord("agent is not an agent id")
    if not isinstance(call.left, bool):
        raise BadRecord("left is not a boolean")
    if call.status in (QUEUED, INCALL):
        # Counted calls: the queue and business day their KPIs belong to must be known.
        _queue_name(call.queue, "queue")
        if not call.day or call.entered is None:
            raise BadRecord(f"{call.status} call without its queue entry day/time")
    if window is not None:
        for name in ("since", "entered", "answered", "left_at"):
            window.check(getattr(call, name), name)
        window.seconds(call.hold, "hold")
    if call.entered is not None and call.answered is not None and call.answered < call.entered:
        raise BadRecord("answered before it entered the queue")
    return call


def parse_connection(ident: str, raw: bytes, window: Window | None = None) -> Connection:
    d = _loads(raw)
    try:
        conn = Connection.from_record(d)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
        raise BadRecord(f"{type(e).__name__}: {e}") from None
    _same_id(conn.id, ident)
    _queue_name(conn.queue, "queue")
    _number(conn.since, "since")
    if window is not None:
        window.check(conn.since, "since")
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
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_WHOLE:
                raise BadRecord(f"counter {q}.{name} is not a whole number")
    try:
        book = DayBook.from_record(record)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
        raise BadRecord(str(e)) from None
    if book.day != day:
        raise BadRecord(f"holds day {book.day!r}")
    return book, d.get("finished") is True


def repair_counters(book: DayBook) -> list[str]:
    """Make a loaded day's counters consistent; returns what was changed (to log).

    The counters' meaning is kpi.py's: a part is never more than its whole
    (answered in SLA <= answered, completed <= answered, abandoned in SLA <=
    abandoned) and every outcome was received first.  A part over its whole is
    cut to it; a whole under its parts is raised to them, so no percentage
    exceeds 100 and no count that was made is thrown away.
    """
    fixed: list[str] = []
    for queue, c in sorted(book.queues.items()):
        for part, whole in (("answered_in_sla", "answered"), ("completed", "answered"),
                            ("abandoned_in_sla", "abandoned")):
            if getattr(c, part) > getattr(c, whole):
                fixed.append(f"{queue}.{part} {getattr(c, part)} > {whole} {getattr(c, whole)}")
                setattr(c, part, getattr(c, whole))
        outcomes = c.answered + c.abandoned + c.timeout
        if c.received < outcomes:
            fixed.append(f"{queue}.received {c.received} < answered+abandoned+timeout {outcomes}")
            c.received = outcomes
    return fixed


def _same_id(found: str, ident: str) -> None:
    if found != ident:
        raise BadRecord(f"holds id {found!r:.40}")
