"""One queue_log line → a validated ``Entry`` (or ``Invalid``).

Asterisk writes ``time|callid|queue|agent|EVENT|data1|data2|…`` (app_queue.c,
``ast_queue_log``), ``time`` being whole Unix seconds.  Every field is checked
here, as ``ami/events.py`` checks AMI headers: the file is input like any
other, and a torn or foreign line must become one log line and nothing else.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: Longest line we accept (bytes, without the newline); Asterisk's own are < 1 KiB.
MAX_LINE = 4096
MAX_FIELD = 256
MAX_DATA_FIELDS = 12

_TIME = re.compile(rb"[0-9]{1,10}\Z")
_VERB = re.compile(r"[A-Z][A-Z_]{1,31}\Z")


class Invalid(ValueError):
    """A line that is not a queue_log entry."""


class Entry(NamedTuple):
    ts: int
    callid: str  # the caller channel's Uniqueid, or NONE/MANAGER/REALTIME/CLI
    queue: str
    agent: str  # member name, interface, or NONE
    verb: str
    data: tuple[str, ...]

    def field(self, i: int) -> str:
        return self.data[i] if i < len(self.data) else ""


def _text(raw: bytes, what: str) -> str:
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"{what} is not UTF-8") from None
    if len(value) > MAX_FIELD or not value.isprintable():
        raise Invalid(f"{what} {value[:24]!r} is not printable text")
    return value


def parse_line(line: bytes) -> Entry:
    """A complete line (without its newline) as an ``Entry``, or ``Invalid``."""
    line = line.rstrip(b"\r")
    if len(line) > MAX_LINE:
        raise Invalid("line too long")
    parts = line.split(b"|")
    if len(parts) < 5:
        raise Invalid("fewer than 5 fields")
    if len(parts) > 5 + MAX_DATA_FIELDS:
        raise Invalid("too many fields")
    if not _TIME.match(parts[0]):
        raise Invalid("time is not whole Unix seconds")
    callid = _text(parts[1], "callid")
    queue = _text(parts[2], "queue")
    agent = _text(parts[3], "agent")
    verb = _text(parts[4], "event")
    if not _VERB.match(verb):
        raise Invalid(f"event {verb[:24]!r} is not a queue_log verb")
    if not callid or not queue or not agent:
        raise Invalid("empty callid, queue or agent")
    data = tuple(_text(p, "data") for p in parts[5:])
    return Entry(int(parts[0]), callid, queue, agent, verb, data)


__all__ = ["MAX_LINE", "Entry", "Invalid", "parse_line"]
