"""Reading a prefix's saved state at start, checking every record on the way in."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from callcenter import gcpause
from callcenter.center import PAST_DAYS
from callcenter.core.pbx_counters import Baseline
from callcenter.kpi import DayBook
from callcenter.logthrottle import LogThrottle
from callcenter.model import Agent, Call, Connection
from callcenter.report import is_report_line
from callcenter.store.connection import RedisProtocol, ResponseError
from callcenter.store.journal import read_journal
from callcenter.store.records import (
    AGENT,
    CALL,
    CONN,
    KINDS,
    BadRecord,
    Keys,
    Window,
    decode,
    parse_agent,
    parse_call,
    parse_connection,
    parse_day,
    repair_counters,
)

log = Logger()

CHUNK = 1000  # keys per MGET, so no single command or reply gets huge
BAD_KEYS_LOGGED = 20  # bad keys of one kind logged in full per start; the rest are counted


@dataclass
class Saved:
    """What a prefix holds; ``bad`` lists, per kind, ids whose keys were skipped,
    ``bad["index"]`` the kinds whose index was broken and ``bad["unfinished"]``
    past days not yet marked finished."""

    agents: list[Agent] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    books: dict[str, DayBook] = field(default_factory=dict)
    bad: dict[str, list[str]] = field(default_factory=dict)
    counters: Baseline | None = None  # the PBX counters' baseline (core/pbx_counters.py)


async def read_indexes(
    proto: RedisProtocol, keys: Keys, logged: set[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Each kind's ids, and the kinds whose index key was not a set.

    A broken index is logged (once per kind in ``logged``) and that kind's keys
    are found by a SCAN of the prefix instead: slow, but only in that repair.
    """
    ds = [proto.execute_command(b"SMEMBERS", keys.index[k]) for k in KINDS]
    results = await defer.DeferredList(ds, consumeErrors=True)
    out: dict[str, list[str]] = {}
    broken: list[str] = []
    for kind, (ok, value) in zip(KINDS, results, strict=True):
        if ok:
            out[kind] = sorted([m.decode("utf-8", "surrogateescape") for m in value])  # = decode
            continue
        if not value.check(ResponseError) or not str(value.value).startswith("WRONGTYPE"):
            value.raiseException()
        if kind not in logged:  # load and the rewrite after it both see it
            logged.add(kind)
            log.warn(
                "Redis key {key} is not a set ({err}); finding its members by a SCAN",
                key=decode(keys.index[kind]),
                err=str(value.value),
            )
        broken.append(kind)
        out[kind] = await _scan(proto, keys.entity(kind, ""))
    return out, broken


async def _scan(proto: RedisProtocol, start: bytes) -> list[str]:
    pattern = re.sub(rb"([*?\[\]\\])", rb"\\\1", start) + b"*"
    cursor, found = b"0", set()
    while True:
        cursor, batch = await proto.execute_command(
            b"SCAN", cursor, b"MATCH", pattern, b"COUNT", b"1000"
        )
        found.update(decode(k[len(start) :]) for k in batch)
        if cursor in (b"0", 0, "0"):
            return sorted(found)


@dataclass
class Fetched:
    """A prefix's raw state as Redis answered, before any record is decoded:
    ``values[i]`` is the string at ``raw_keys[i]`` (``wanted[i]`` names it), or
    None with ``types[i]`` the key's type (``none`` when it is absent)."""

    today: str
    wanted: list[tuple[str, str]]
    raw_keys: list[bytes]
    values: list[bytes | None]
    types: dict[int, str]
    broken: list[str]
    counters: bytes | None


async def fetch_state(proto: RedisProtocol, keys: Keys, today: str, logged: set[str]) -> Fetched:
    """Everything ``decode_state`` needs, read with every command sent at once."""
    indexes, broken = await read_indexes(proto, keys, logged)
    first = date.fromisoformat(today)
    days = [(first - timedelta(days=n)).isoformat() for n in range(PAST_DAYS + 1)]
    # Every MGET at once: one round trip's worth of latency for the lot.
    wanted: list[tuple[str, str]] = [(kind, i) for kind in KINDS for i in indexes[kind]]
    wanted += [("day", d) for d in days]
    raw_keys: list[bytes] = []
    for kind in KINDS:  # 30,000 keys for 10,000 agents: no call per key
        pre = keys.entity(kind, "")
        raw_keys += [pre + i.encode("utf-8", "surrogateescape") for i in indexes[kind]]
    raw_keys += [keys.day(d) for d in days]
    ds = [proto.command([b"MGET", *raw_keys[i : i + CHUNK]]) for i in range(0, len(raw_keys), CHUNK)]
    counters = proto.execute_command(b"GET", keys.counters)
    counters.addErrback(_counters_refused, keys)
    replies = await defer.gatherResults([*ds, counters], consumeErrors=True)
    raw_counters = replies.pop()
    values: list[bytes | None] = []
    for part in replies:
        values.extend(part)
    missing = [i for i, raw in enumerate(values) if raw is None]
    types: dict[int, str] = {}
    if missing:
        found = await defer.gatherResults(
            [proto.execute_command(b"TYPE", raw_keys[i]) for i in missing], consumeErrors=True
        )
        for i, key_type in zip(missing, found, strict=True):
            types[i] = key_type.decode() if isinstance(key_type, bytes) else str(key_type)
    return Fetched(today, wanted, raw_keys, values, types, broken, raw_counters)


def decode_state(fetched: Fetched, keys: Keys, window: Window | None = None) -> Saved:
    """Check and decode every record fetched: one synchronous step (the caller
    keeps the garbage collector paused over it and the restore, see gcpause).

    With a ``window``, every time must lie in it; day counters that contradict
    each other are repaired (and logged), see ``records.repair_counters``."""
    today = fetched.today
    saved = Saved(bad={"index": fetched.broken, "unfinished": [], **{k: [] for k in KINDS}})
    # A poisoned Redis may hold thousands of bad keys: the first few are logged
    # in full, then one "N more like this" line per kind at the end of the read.
    warn = LogThrottle(log, interval=float("inf"), burst=BAD_KEYS_LOGGED)
    parsers = {AGENT: parse_agent, CALL: parse_call, CONN: parse_connection}
    loaded: dict[str, list[Any]] = {AGENT: saved.agents, CALL: saved.calls, CONN: saved.connections}
    for n, ((kind, ident), key, raw) in enumerate(
        zip(fetched.wanted, fetched.raw_keys, fetched.values, strict=True)
    ):
        if raw is None:
            _missing(kind, ident, key, fetched.types[n], keys, saved, warn)
            continue
        try:
            if kind == "day":
                book, finished = parse_day(ident, raw)
                for what in repair_counters(book):
                    warn.warn("redis.repaired", "Redis key {key}: {what}; repaired",
                              key=decode(key), what=what)
                saved.books[ident] = book
                if ident < today and not finished:
                    saved.bad["unfinished"].append(ident)
            else:
                loaded[kind].append(parsers[kind](ident, raw, window))
                if window is not None and window.repairs:
                    for what in window.repairs:
                        warn.warn("redis.repaired", "Redis key {key}: {what}",
                                  key=decode(key), what=what)
                    window.repairs.clear()
        except BadRecord as e:
            warn.warn("redis.bad", "Redis key {key}: {err}; skipped", key=decode(key), err=str(e))
            if kind != "day":
                saved.bad[kind].append(ident)
    warn.flush()
    saved.counters = _decode_counters(fetched.counters, keys)
    return saved


def _missing(kind: str, ident: str, key: bytes, key_type: str, keys: Keys, saved: Saved,
             warn: LogThrottle) -> None:
    """A wanted key that held no string: absent, or of another type."""
    if kind == "day":
        if key_type != "none":  # an absent day is normal: nothing counted yet
            warn.warn(
                "redis.type", "Redis key {key} is a {t}, not a string; skipped",
                key=decode(key),
                t=key_type,
            )
        return
    what = "missing" if key_type == "none" else f"a {key_type}, not a string"
    warn.warn(
        "redis.missing", "Redis key {key} is {what} (listed in {index}); skipped",
        key=decode(key),
        what=what,
        index=decode(keys.index[kind]),
    )
    saved.bad[kind].append(ident)


async def read_state(
    proto: RedisProtocol, keys: Keys, today: str, logged: set[str], window: Window | None = None
) -> Saved:
    """Entities and the day counters of ``today`` and the PAST_DAYS before it."""
    fetched = await fetch_state(proto, keys, today, logged)
    with gcpause.paused():  # 30,000 records at once: see callcenter/gcpause.py
        return decode_state(fetched, keys, window)


def _counters_refused(failure: Any, keys: Keys) -> None:
    """GET of the counters' key refused (not a string): logged, read as absent."""
    failure.trap(ResponseError)
    log.warn("Redis key {key}: {err}; skipped", key=decode(keys.counters), err=str(failure.value))
    return None


def _decode_counters(raw: bytes | None, keys: Keys) -> Baseline | None:
    """The PBX counters' baseline, or None (absent; or not ours: logged, and the
    next gap is then counted by the rule without counters)."""
    if raw is None:
        return None
    try:
        return Baseline.from_record(json.loads(raw))
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        log.warn("Redis key {key}: {err}; skipped", key=decode(keys.counters), err=str(e))
        return None


async def replay_journal(proto: RedisProtocol, keys: Keys, path: str) -> int:
    """Send Redis the journaled transactions it lacks (see journal.py); returns how many.

    Each journaled transaction ends by setting ``P report:applied`` to its
    ``epoch:seq``, and Redis applies one connection's transactions in order:
    the ones after the marker are those it never got.
    """
    records, bad = read_journal(path)
    if bad:
        log.warn(
            "report journal {path}: {n} torn or unreadable record(s) ignored (a kill while "
            "writing; their lines were not in the file yet)",
            path=path,
            n=bad,
        )
    if not records:
        return 0
    marker = await proto.execute_command(b"GET", keys.applied)
    epoch, _, seq = (marker or b"").decode("ascii", "replace").partition(":")
    applied = int(seq) if seq.isdigit() else -1
    todo = [r for r in records if not (r.epoch == epoch and r.seq <= applied)]
    if not todo:
        return 0
    replies = await defer.gatherResults(
        [proto.transaction(r.commands) for r in todo], consumeErrors=True
    )
    for reply in replies:
        if not isinstance(reply, list):
            raise ResponseError(f"journal replay discarded ({reply!r})")
        errors = [r for r in reply if isinstance(r, Exception)]
        if errors:
            raise errors[0]
    log.info(
        "report journal {path}: replayed {n} transaction(s) Redis did not have",
        path=path,
        n=len(todo),
    )
    return len(todo)


async def recover_outbox(proto: RedisProtocol, keys: Keys, path: str, end: int) -> list[str]:
    """The report lines a killed process committed but did not write.

    The file is written in outbox order and the outbox trimmed only after
    that, so the file (up to ``end``, where it ended before this process wrote
    to it) ends with the first j outbox lines: find the longest such j; the
    rest are returned, to be appended.  Entries that are not whole report
    lines (someone else's data in the list) are logged and left out, so
    nothing glues onto a line in the file.
    """
    raw = await proto.execute_command(b"LRANGE", keys.outbox, b"0", b"-1")
    lines: list[str] = []
    bad = 0
    for r in raw or ():
        text = r.decode("utf-8", "replace") if isinstance(r, bytes) else str(r)
        if is_report_line(text):
            lines.append(text)
        else:
            bad += 1
            if bad == 1:
                # Its text may hold a caller's number: shown at debug level only.
                log.warn(
                    "Redis key {key}: an entry ({n} characters) is not a report line; skipped",
                    key=decode(keys.outbox),
                    n=len(text),
                )
                log.debug("the entry: {entry!r:.80}", entry=text)
    if bad > 1:
        log.warn("Redis key {key}: {n} entries were not report lines; skipped",
                 key=decode(keys.outbox), n=bad)
    if not lines:
        return []
    tail = _tail(path, sum(len(x.encode()) for x in lines) + 1, end)
    done = next(j for j in range(len(lines), -1, -1) if tail.endswith("".join(lines[:j])))
    missing = lines[done:]
    if missing:
        log.info(
            "report file {path}: {n} line(s) written to Redis before a stop are appended",
            path=path,
            n=len(missing),
        )
    return missing


def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _tail(path: str, size: int, end: int) -> str:
    """The ``size`` bytes of a file before offset ``end``, as text ("" when missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, end - size))
            return f.read(min(size, end)).decode("utf-8", "replace")
    except OSError:
        return ""
