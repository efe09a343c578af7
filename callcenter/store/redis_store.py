"""Live state and KPIs in Redis, so a restart loses no call, agent or count.

The Callcenter owns the state; this adapter mirrors it (layout in
``records.py``):

- every ``Changes`` (one AMI event) becomes one MULTI/EXEC writing exactly the
  entities and days it names, so a write costs O(what the event touched),
  never O(agents + calls), and Redis never holds half an event;
- at start ``load()`` reads the prefix's indexes and records, skipping (and
  logging) anything malformed, and hands the rest to ``center.restore``; the
  AMI resync that follows reconciles it with the PBX;
- while Redis is down the service runs from memory: one warning, reconnection
  with backoff, and on reconnect one transaction replacing this prefix's state
  with memory's.  If Redis was unreachable at start, the day counters it
  holds are merged into memory's on reconnect instead of being overwritten;
- given the report writer, the store also makes the report file exact across
  a SIGKILL: an event's report lines go into its transaction (an outbox list)
  and reach the file once Redis has the event; at start, outbox lines missing
  from the file's tail are appended.  Without it, a kill between the file
  write and the Redis write duplicates lines (the restart's resync reports the
  same status change again).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from callcenter.center import Callcenter, Changes
from callcenter.core.counting import uncount_answer, uncount_entry
from callcenter.kpi import DayBook
from callcenter.model import INCALL, QUEUED
from callcenter.report import ReportWriter, Transition
from callcenter.store import connection as conn_mod
from callcenter.store import reading
from callcenter.store.connection import ConnectionError, RedisProtocol, ResponseError
from callcenter.store.records import (
    AGENT,
    CALL,
    CONN,
    KINDS,
    Keys,
    day_value,
    dumps,
    encode,
)
from callcenter.store.redis_url import parse_redis_url

log = Logger()

DOWN, PENDING, UP = "down", "pending", "up"
CHUNK = 1000  # keys per MGET/MSET/SADD, so no single command or reply gets huge

Command = list[bytes]


class RedisStore:
    initial_delay = 0.5  # seconds before the first reconnection attempt
    max_delay = 10.0
    connect_timeout = 5.0
    reply_timeout = 30.0  # a Redis that stops answering is treated as down

    def __init__(
        self,
        reactor: Any,
        url: str,
        prefix: str,
        center: Callcenter,
        report: ReportWriter | None = None,
    ) -> None:
        self.reactor = reactor
        self.report = report
        # Where the file ended before this process wrote to it: a previous
        # process's unwritten lines are looked for before that point.
        self._report_start = reading.file_size(report.path) if report is not None else 0
        self.url = parse_redis_url(url)
        self.keys = Keys(prefix)
        self.center = center
        self._endpoint = conn_mod.make_endpoint(reactor, self.url, self.connect_timeout)
        self.state = DOWN
        self._proto: RedisProtocol | None = None
        self._loaded = False  # Redis's state was read (at start, or merged after)
        self._counted_here: dict[str, _Counted] = {}  # before loading: what we counted
        self._pending_days: dict[str, DayBook] = {}  # finished days not yet written
        self._lines: deque[_Lines] = deque()  # report lines waiting for their transaction
        self._inflight: set[defer.Deferred] = set()
        self._retry: IDelayedCall | None = None
        self._sync_timer: IDelayedCall | None = None
        self._sync_attempt = 0
        self._connecting = False
        self._attempt = 0
        self._down_since: float | None = None
        self._failing = False  # a write failure was logged; cleared by the next good sync
        self._stopping = False
        self._broken_logged: set[str] = set()
        self._unsubscribe: Any = None
        # For tests, the benchmark and anyone debugging.
        self.last_error = ""
        self.transactions = 0
        self.full_syncs = 0

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> defer.Deferred:
        """Connect, read this prefix's state and restore the center from it.

        Never fails: an unreachable Redis is one log line, the service starts
        empty and the store keeps trying in the background.
        """
        return defer.ensureDeferred(self._load())

    def start(self) -> None:
        """Write every change of the center from now on."""
        if self._unsubscribe is None:
            self._unsubscribe = self.center.subscribe(self._on_changes)

    def stop(self) -> defer.Deferred:
        """Stop reconnecting, let the writes in flight finish, close."""
        self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for timer in (self._retry, self._sync_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._retry = self._sync_timer = None
        proto = self._proto
        if proto is None:
            return defer.succeed(None)
        gone = proto.whenDisconnected()
        d = self.flush()
        d.addBoth(lambda _: proto.transport.loseConnection())
        d.addCallback(lambda _: gone)
        d.addCallback(lambda _: None)
        return d

    def flush(self) -> defer.Deferred:
        """Fires once every transaction sent so far has been answered (or failed)."""
        return defer.DeferredList(list(self._inflight), consumeErrors=True)

    # ------------------------------------------------------------------ connecting

    def _connect(self) -> defer.Deferred:
        return defer.ensureDeferred(
            conn_mod.connect(
                self.reactor, self._endpoint, self.url, self.connect_timeout, self.reply_timeout
            )
        )

    async def _load(self) -> None:
        try:
            proto = await self._connect()
        except Exception as e:
            self._down_since = self.reactor.seconds()
            log.error(
                "Redis at {url} is not available ({err}): starting with empty state; "
                "retrying in the background",
                url=str(self.url),
                err=_reason(e),
            )
            self._failing = True
            self._schedule_connect()
            return
        self._attach(proto)
        try:
            await self._read_and_restore(proto)
        except Exception as e:
            log.error(
                "Redis at {url}: reading the saved state failed ({err}): starting with "
                "empty state; will merge the saved KPIs when Redis answers",
                url=str(self.url),
                err=_reason(e),
            )
            self._failing = True
            if self._proto is proto:
                proto.transport.loseConnection()  # reconnecting retries the read
            return

    def _attach(self, proto: RedisProtocol) -> None:
        self._proto = proto
        self.state = PENDING
        proto.whenDisconnected().addCallback(self._lost, proto)

    def _lost(self, _: Any, proto: RedisProtocol) -> None:
        if self._proto is not proto:
            return
        self._proto = None
        self.state = DOWN
        if self._sync_timer is not None and self._sync_timer.active():
            self._sync_timer.cancel()
        self._sync_timer = None
        if self._stopping:
            return
        self._down_since = self.reactor.seconds()
        if not self._failing:
            log.warn(
                "Redis at {url}: connection lost; running from memory, reconnecting, "
                "and the full state will be written when it is back",
                url=str(self.url),
            )
            self._failing = True
        self._attempt = 0
        self._schedule_connect()

    def _schedule_connect(self) -> None:
        if self._stopping or self._retry is not None or self._connecting:
            return
        delay = min(self.max_delay, self.initial_delay * 2**self._attempt)
        delay *= random.uniform(0.8, 1.2)  # several services must not retry in step
        self._attempt += 1
        self._retry = self.reactor.callLater(delay, self._try_connect)

    def _try_connect(self) -> None:
        self._retry = None
        self._connecting = True
        d = self._connect()
        d.addCallbacks(self._connected, self._connect_failed)

    def _connect_failed(self, failure: Any) -> None:
        # Already reported once for this outage; retries stay quiet.
        self._connecting = False
        self.last_error = _reason(failure.value)
        self._schedule_connect()

    def _connected(self, proto: RedisProtocol) -> None:
        self._connecting = False
        if self._stopping:
            proto.transport.loseConnection()
            return
        self._attempt = 0
        away = self.reactor.seconds() - (self._down_since or self.reactor.seconds())
        log.info(
            "Redis at {url} is back after {away:.0f} s; writing the full state",
            url=str(self.url),
            away=away,
        )
        self._attach(proto)
        self._request_full_sync(proto)

    # ------------------------------------------------------------------ per-event writes

    def _on_changes(self, ch: Changes) -> None:
        if not self._loaded:
            self._track_counted(ch)
        lines = ch.transitions if self.report is not None else []
        if self.state != UP:
            # The full write on reconnect covers this event; only finished days
            # could fall out of the center's memory before then.
            for book in ch.rolled:
                self._pending_days[book.day] = book
            if lines:
                self._queue_lines(lines, defer.succeed(False), None)  # no Redis to be exact with
            return
        cmds = self._event_commands(ch)
        if lines:
            assert self.report is not None
            tz = self.report.tz
            cmds.append([b"RPUSH", self.keys.outbox, *(encode(t.line(tz)) for t in lines)])
        if cmds:
            d = self._send(self._proto, cmds)
            if lines:
                self._queue_lines(lines, d, self._proto)

    def _queue_lines(
        self, lines: list[Transition], outcome: defer.Deferred, proto: RedisProtocol | None
    ) -> None:
        """Report lines go to the file in event order, each after its transaction's outcome."""
        entry = _Lines(lines, proto)
        self._lines.append(entry)

        def landed(applied: bool) -> None:
            entry.applied, entry.ready = bool(applied), True
            self._drain_lines()

        outcome.addCallback(landed)

    def _drain_lines(self) -> None:
        assert self.report is not None
        while self._lines and self._lines[0].ready:
            entry = self._lines.popleft()
            self.report.write(entry.lines)
            proto = entry.proto
            if entry.applied and proto is self._proto and proto is not None and proto.connected:
                # In the file now: drop them from the outbox (the oldest: it is FIFO).
                n = str(len(entry.lines)).encode()
                d = proto.execute_command(b"LTRIM", self.keys.outbox, n, b"-1", apply_timeout=False)
                d.addErrback(lambda _: None)  # if lost, the next full write clears the outbox

    def _event_commands(self, ch: Changes) -> list[Command]:
        center, keys = self.center, self.keys
        sets: Command = []
        dels: Command = []
        cmds: list[Command] = []
        kinds: tuple[tuple[str, Iterable[str], dict[str, Any]], ...] = (
            (AGENT, ch.agents, center.agents),
            (CALL, ch.calls, center.calls),
            (CONN, ch.connections, center.connections),
        )
        for kind, ids, live in kinds:
            added: Command = []
            removed: Command = []
            for ident in ids:
                key = keys.entity(kind, ident)
                entity = live.get(ident)
                if entity is None:
                    dels.append(key)
                    removed.append(encode(ident))
                else:
                    sets += (key, dumps(entity.to_record()))
                    added.append(encode(ident))
            if added:
                cmds.append([b"SADD", keys.index[kind], *added])
            if removed:
                cmds.append([b"SREM", keys.index[kind], *removed])
        days = set(ch.days)
        rolled = {book.day: book for book in ch.rolled}
        days.update(rolled)
        for day in sorted(days):
            book = self._book(day) or rolled.get(day)
            if book is not None:
                sets += (keys.day(day), day_value(book, day < center.book.day))
        if dels:
            cmds.insert(0, [b"DEL", *dels])
        if sets:
            cmds.insert(0, [b"MSET", *sets])
        return cmds

    def _book(self, day: str) -> DayBook | None:
        if day == self.center.book.day:
            return self.center.book
        return self.center.past.get(day) or self._pending_days.get(day)

    def _send(self, proto: RedisProtocol | None, cmds: list[Command]) -> defer.Deferred:
        """One MULTI/EXEC, pipelined behind whatever is in flight on ``proto``."""
        if proto is None:
            return defer.succeed(False)
        try:
            d: defer.Deferred = proto.transaction(cmds)
        except ConnectionError:
            return defer.succeed(False)
        self._inflight.add(d)
        d.addBoth(self._landed, d)
        d.addCallback(self._check_exec)
        d.addErrback(self._write_failed, proto)
        return d  # fires True when applied, False when not (already handled)

    def _landed(self, result: Any, d: defer.Deferred) -> Any:
        self._inflight.discard(d)
        return result

    def _check_exec(self, replies: Any) -> bool:
        if not isinstance(replies, list):
            raise ResponseError(f"transaction discarded ({replies!r})")
        errors = [r for r in replies if isinstance(r, Exception)]
        if errors:
            raise errors[0]
        self.transactions += 1
        return True

    def _write_failed(self, failure: Any, proto: RedisProtocol) -> bool:
        """A transaction failed: a lost connection is _lost()'s; a refusal is ours."""
        if self._proto is not proto or self._stopping or not proto.connected:
            return False
        if failure.check(ConnectionError):
            return False
        if not self._failing:
            log.warn(
                "Redis at {url} refused a write ({err}); running from memory, the full "
                "state will be rewritten",
                url=str(self.url),
                err=_reason(failure.value),
            )
            self._failing = True
        # Redis is now behind memory: stop per-event writes and rewrite
        # everything after a pause (an OOM or READONLY Redis is not hammered).
        self.state = PENDING
        if self._sync_timer is None:
            delay = min(self.max_delay, self.initial_delay * 2**self._sync_attempt)
            self._sync_attempt += 1
            self._sync_timer = self.reactor.callLater(delay, self._timed_sync, proto)
        return False

    def _timed_sync(self, proto: RedisProtocol) -> None:
        self._sync_timer = None
        self._request_full_sync(proto)

    # ------------------------------------------------------------------ full state

    def _request_full_sync(self, proto: RedisProtocol) -> None:
        """Make Redis equal memory again (merging its saved KPIs first if never loaded)."""
        if self._proto is not proto or self._stopping:
            return
        self.state = PENDING
        work = self._full_sync(proto) if self._loaded else self._late_load(proto)
        defer.ensureDeferred(work).addErrback(self._write_failed, proto)

    async def _full_sync(self, proto: RedisProtocol) -> None:
        """Replace this prefix's state in Redis with memory's, in one transaction."""
        old, _broken = await reading.read_indexes(proto, self.keys, self._broken_logged)
        if self._proto is not proto or self._stopping:
            return
        # From here to _send nothing yields: the snapshot is memory at this
        # instant, and later events are pipelined behind it.
        cmds = self._full_commands(old)
        self.state = UP
        self.full_syncs += 1
        if not await self._send(proto, cmds):
            return  # retried later with _pending_days still held
        self._pending_days.clear()
        self._sync_attempt = 0
        if self._failing and self.state == UP:
            log.info("Redis at {url}: state written, in step again", url=str(self.url))
            self._failing = False

    def _full_commands(self, old: dict[str, list[str]]) -> list[Command]:
        keys, center = self.keys, self.center
        cmds: list[Command] = []
        live: dict[str, dict[str, Any]] = {
            AGENT: center.agents,
            CALL: center.calls,
            CONN: center.connections,
        }
        stale: Command = list(keys.index.values())
        for kind in KINDS:
            stale += [keys.entity(kind, i) for i in old[kind] if i not in live[kind]]
        if self.report is not None:
            # Every outbox line is in the file by now (delivered on ack or on failure).
            stale.append(keys.outbox)
        for chunk in _chunks(stale):
            cmds.append([b"DEL", *chunk])
        for kind in KINDS:
            items = list(live[kind].items())
            for chunk in _chunks(items):
                pairs: Command = []
                for ident, entity in chunk:
                    pairs += (keys.entity(kind, ident), dumps(entity.to_record()))
                cmds.append([b"MSET", *pairs])
                cmds.append([b"SADD", keys.index[kind], *(encode(i) for i, _ in chunk)])
        books = dict(self._pending_days)
        books.update(center.past)
        books[center.book.day] = center.book
        for day, book in sorted(books.items()):
            cmds.append([b"SET", keys.day(day), day_value(book, day < center.book.day)])
        return cmds

    # ------------------------------------------------------------------ loading

    async def _recover_outbox(self, proto: RedisProtocol) -> None:
        if self.report is not None:
            await reading.recover_outbox(proto, self.keys, self.report.path, self._report_start)

    async def _read_and_restore(self, proto: RedisProtocol) -> None:
        await self._recover_outbox(proto)
        saved = await reading.read_state(
            proto, self.keys, self.center.book.day, self._broken_logged
        )
        agents, calls, conns, books, bad = (
            saved.agents,
            saved.calls,
            saved.connections,
            saved.books,
            saved.bad,
        )
        before = {a.agentid: (a.call, a.status) for a in agents}
        loaded = {
            AGENT: list(before),
            CALL: [c.id for c in calls],
            CONN: [c.id for c in conns],
        }
        self.center.restore(agents, calls, conns, books.values())
        self._loaded = True
        self._counted_here.clear()
        log.info(
            "restored {a} agents, {c} calls, {n} connections and the KPIs of {d} "
            "from Redis at {url}",
            a=len(self.center.agents),
            c=len(self.center.calls),
            n=len(self.center.connections),
            d=", ".join(sorted(books)) or "no day",
            url=str(self.url),
        )
        if bad["index"]:
            self._request_full_sync(proto)  # an index must be rebuilt: rewrite everything
            return
        cmds = self._fixup_commands(before, loaded, bad, books)
        if self.report is not None:
            cmds.append([b"DEL", self.keys.outbox])
        self.state = UP
        if cmds:
            self._send(proto, cmds)

    def _fixup_commands(
        self,
        before: dict[str, tuple[str | None, str]],
        loaded: dict[str, list[str]],
        bad: dict[str, Any],
        books: dict[str, DayBook],
    ) -> list[Command]:
        """What restore dropped or changed, and bad keys: make Redis equal memory."""
        keys, center = self.keys, self.center
        live: dict[str, dict[str, Any]] = {
            AGENT: center.agents,
            CALL: center.calls,
            CONN: center.connections,
        }
        cmds: list[Command] = []
        dels: Command = []
        sets: Command = []
        for kind in KINDS:
            # Bad keys, and records restore() dropped as inconsistent.
            gone = set(bad[kind])
            gone.update(i for i in loaded[kind] if i not in live[kind])
            for ident in sorted(gone):
                dels.append(keys.entity(kind, ident))
            if gone:
                cmds.append([b"SREM", keys.index[kind], *(encode(i) for i in sorted(gone))])
        # Agents whose connection was dropped are no longer INCALL.
        for agentid, (call, status) in before.items():
            agent = center.agents.get(agentid)
            if agent is not None and (agent.call, agent.status) != (call, status):
                sets += (keys.entity(AGENT, agentid), dumps(agent.to_record()))
        for day in bad["unfinished"]:
            book = center.past.get(day) or books.get(day)
            if book is not None:
                sets += (keys.day(day), day_value(book, True))
        if dels:
            cmds.insert(0, [b"DEL", *dels])
        if sets:
            cmds.insert(0, [b"MSET", *sets])
        return cmds

    # ------------------------------------------------------------------ late load

    def _track_counted(self, ch: Changes) -> None:
        """Before Redis's state is known: what this process counted for which call."""
        for ident in ch.calls:
            call = self.center.calls.get(ident)
            if call is None or call.status not in (QUEUED, INCALL):
                continue
            seen = self._counted_here.get(ident)
            if seen is None:
                seen = self._counted_here[ident] = _Counted(call.day, call.queue)
            if call.status == INCALL and seen.hold is None:
                seen.hold = call.hold or 0

    async def _late_load(self, proto: RedisProtocol) -> None:
        """Redis answers after we started empty: keep its day counters.

        Memory holds the PBX's truth by now (the AMI resync), so entities are
        memory's.  Counters are Redis's plus memory's, minus what this process
        counted again for a call that was live in Redis: it found the call at
        the PBX and counted its queue entry (and answer) a second time.
        """
        await self._recover_outbox(proto)
        saved = await reading.read_state(
            proto, self.keys, self.center.book.day, self._broken_logged
        )
        calls, books = saved.calls, saved.books
        if self._proto is not proto or self._stopping:
            return
        center = self.center
        merged: dict[str, DayBook] = dict(books)
        mine = dict(center.past)
        mine[center.book.day] = center.book
        for day, own in mine.items():
            book = merged.setdefault(day, DayBook(day))
            if book is not own:
                for queue, counters in own.queues.items():
                    book.queue(queue).add(counters)
        for call in calls:
            seen = self._counted_here.get(call.id)
            book = merged.get(seen.day) if seen is not None else None
            if seen is None or book is None or call.status not in (QUEUED, INCALL):
                continue
            c = book.queue(seen.queue)
            uncount_entry(c)
            if call.status == INCALL and seen.hold is not None:
                uncount_answer(c, seen.hold, center.sla)
        if books:
            center.restore(
                list(center.agents.values()),
                list(center.calls.values()),
                list(center.connections.values()),
                merged.values(),
            )
            center.publish_stats()  # dashboards see the merged day at once
            log.info(
                "Redis at {url}: merged the saved KPIs of {days} into memory's",
                url=str(self.url),
                days=", ".join(sorted(books)),
            )
        self._loaded = True
        self._counted_here.clear()
        self._request_full_sync(proto)


class _Lines:
    __slots__ = ("lines", "proto", "ready", "applied")

    def __init__(self, lines: list[Transition], proto: RedisProtocol | None) -> None:
        self.lines = lines
        self.proto = proto
        self.ready = False
        self.applied = False


class _Counted:
    """What this process counted for one call before Redis's state was known."""

    __slots__ = ("day", "queue", "hold")

    def __init__(self, day: str, queue: str) -> None:
        self.day = day
        self.queue = queue
        self.hold: int | None = None  # set when it counted the answer


def _reason(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text.removeprefix("Redis error: ")


def _chunks(items: list[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


__all__ = ["RedisStore"]
