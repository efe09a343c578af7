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
  same status change again).  A line stays in the outbox until it is in the
  file (written, fsynced): a full disk holds lines, it never drops them;
- when Redis does not answer within ``report_wait`` seconds (or is down),
  lines stop waiting for it: each event's transaction goes to the local
  journal (``journal.py``) and then its lines to the file; the next start
  replays the journaled transactions Redis lacks.  So a SIGKILL at any moment
  neither loses nor repeats a line (docs/reliability.md says exactly when).
"""

from __future__ import annotations

import random
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from callcenter import gcpause
from callcenter.center import Callcenter, Changes
from callcenter.core.counting import uncount_answer, uncount_entry
from callcenter.kpi import DayBook
from callcenter.logthrottle import LogThrottle
from callcenter.model import INCALL, QUEUED
from callcenter.report import ReportWriter, Transition, lines_of
from callcenter.store import connection as conn_mod
from callcenter.store import reading
from callcenter.store.connection import ConnectionError, RedisProtocol, ResponseError
from callcenter.store.journal import JOURNAL_SUFFIX, REPORT_WAIT, Journal, encode_record
from callcenter.store.records import (
    AGENT,
    CALL,
    CONN,
    KINDS,
    MAX_RECORD_AGE,
    Keys,
    Window,
    day_value,
    dumps,
    encode,
)
from callcenter.store.redis_url import parse_redis_url

log = Logger()

DOWN, PENDING, UP = "down", "pending", "up"
WRITE_REFUSED = "write refused: "
CHUNK = 1000  # keys per MGET/MSET/SADD, so no single command or reply gets huge
# Seconds between attempts to write held lines to a full (or failing) disk.
REPORT_RETRY = 1.0

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
        report_wait: float = REPORT_WAIT,
        max_record_age: float = MAX_RECORD_AGE,
    ) -> None:
        self.reactor = reactor
        self.report = report
        self.report_wait = report_wait
        self.max_record_age = max_record_age
        self.journal = (
            Journal(report.path + JOURNAL_SUFFIX, fsync=report.fsync) if report is not None else None
        )
        # Each process numbers its transactions; Redis keeps the last one it
        # applied (``P report:applied``), so a start knows which journaled ones it lacks.
        self._epoch = secrets.token_hex(6)
        self._seq = 0
        self._applied = 0  # highest seq Redis acknowledged
        self._journaled = 0  # highest seq in the journal
        self._unacked: deque[_Txn] = deque()  # sent to Redis, not answered yet, in order
        self._to_journal: list[_Txn] = []  # waiting for the journal (or for disk space)
        self._journaling = False  # Redis slow or down: lines wait for the journal, not Redis
        self._wait_timer: IDelayedCall | None = None
        self._io_call: IDelayedCall | None = None
        self._io_retry: IDelayedCall | None = None
        self._throttle = LogThrottle(log, reactor)
        # Where the file ended before this process wrote to it: a previous
        # process's unwritten lines are looked for before that point.
        self._report_start = reading.file_size(report.path) if report is not None else 0
        self.url = parse_redis_url(url)
        self.keys = Keys(prefix)
        self.center = center
        self._endpoint = conn_mod.make_endpoint(reactor, self.url, self.connect_timeout)
        self._state = DOWN
        self._state_hooks: list[Any] = []
        self._state_told: tuple[bool, str] | None = None
        self._proto: RedisProtocol | None = None
        self._loaded = False  # Redis's state was read (at start, or merged after)
        self._counted_here: dict[str, _Counted] = {}  # before loading: what we counted
        self._pending_days: dict[str, DayBook] = {}  # finished days not yet written
        self._lines: deque[_Lines] = deque()  # report lines waiting for their transaction
        self._inflight: set[defer.Deferred] = set()
        self._syncs: set[defer.Deferred] = set()  # report fsyncs running off the reactor
        self._outbox_epoch = 0  # a full write replaced the outbox: older trims are void
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
        self._parts: list[Any] = []  # more writers in each event's transaction (add_part)
        # For tests, the benchmark and anyone debugging.
        self.last_error = ""
        self.transactions = 0
        self.full_syncs = 0
        # Called with each event transaction's seconds from sent to answered (metrics).
        self.write_observers: list[Callable[[float], None]] = []

    # ------------------------------------------------------------------ state, for health

    @property
    def state(self) -> str:
        """DOWN (no connection), PENDING (connected, Redis behind memory) or UP
        (every change is written as it happens)."""
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self._state = value
        self._tell_state()

    def add_state_hook(self, fn: Any) -> None:
        """``fn(up, error)`` whenever being written (UP) or not, or the reason, changes."""
        self._state_hooks.append(fn)
        self._state_told = None
        self._tell_state()

    def _tell_state(self) -> None:
        up = self._state == UP
        if up:
            error = ""
        elif self._state == PENDING:
            refused = self.last_error.startswith(WRITE_REFUSED)
            error = self.last_error if refused else "writing the full state"
        else:
            error = self.last_error or "not connected yet"
        if (up, error) == self._state_told or not self._state_hooks:
            return
        self._state_told = (up, error)
        for fn in list(self._state_hooks):
            try:
                fn(up, error)
            except Exception:
                log.failure("Redis state hook {fn!r} failed", fn=fn)

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

    def add_part(self, part: Any) -> None:
        """Another writer whose commands ride in each event's transaction (the
        webhooks' outbox): ``part.on_changes(ch)`` gives them (called for every
        change, Redis up or not), ``part.full_commands()`` its share of a full
        rewrite, ``await part.load(proto)`` reads it back before the restore,
        ``part.restored()`` follows the restore.  Call before ``load``."""
        self._parts.append(part)
        part.attach(self)

    def execute(self, command: Command) -> None:
        """One command outside the event transactions, pipelined behind them on
        the same connection; dropped when Redis is away (the full rewrite on its
        return makes Redis equal memory anyway)."""
        proto = self._proto
        if proto is None or not proto.connected or self.state == DOWN:
            return
        d = proto.execute_command(*command, apply_timeout=False)
        d.addErrback(lambda _: None)

    def stop(self) -> defer.Deferred:
        """Stop reconnecting, let the writes in flight finish, close."""
        self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for timer in (self._retry, self._sync_timer, self._wait_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._retry = self._sync_timer = self._wait_timer = None
        proto = self._proto
        if proto is None:
            self._stop_io()
            return defer.succeed(None)
        gone = proto.whenDisconnected()
        d = self.flush()
        d.addBoth(lambda _: self._stop_io())
        d.addBoth(lambda _: proto.transport.loseConnection())
        d.addCallback(lambda _: gone)
        d.addCallback(lambda _: None)
        return d

    def flush(self) -> defer.Deferred:
        """Fires once every transaction sent so far has been answered (or failed)
        and the report lines that were then due have been written (or held)."""
        d = defer.DeferredList(list(self._inflight), consumeErrors=True)
        d.addCallback(lambda _: self._run_io())
        # and their fsync (off the reactor) and outbox trim
        d.addCallback(lambda _: defer.DeferredList(list(self._syncs), consumeErrors=True))
        d.addCallback(lambda _: None)
        return d

    @property
    def loaded(self) -> bool:
        """Redis's saved state was read (a catch-up may trust what is missing)."""
        return self._loaded

    @property
    def held_lines(self) -> int:
        """Report lines not in the file yet (waiting for Redis, the journal or the disk)."""
        return sum(len(e.lines) for e in self._lines)

    def _stop_io(self) -> None:
        self._run_io()
        for timer in (self._io_call, self._io_retry):
            if timer is not None and timer.active():
                timer.cancel()
        self._io_call = self._io_retry = None
        if self.journal is not None:
            self.journal.close()

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
            self.last_error = _reason(e)
            self._tell_state()
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
        if not self._stopping:
            self.last_error = "connection lost"
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
        self._tell_state()
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
        extra: list[Command] = [c for part in self._parts for c in part.on_changes(ch)]
        if not self._loaded:
            self._track_counted(ch)
        lines = self._lines_of(ch)
        if self.state != UP:
            # The full write on reconnect covers this event; only finished days
            # could fall out of the center's memory before then.
            for book in ch.rolled:
                self._pending_days[book.day] = book
            if self.report is None:
                return
            if not self._loaded:
                # Redis's state is not known yet (it will be merged): no
                # journal to be exact with, the lines go straight to the file.
                if lines:
                    self._add_lines(lines, None).ready = True
                    self._schedule_io()
                return
            # Redis is behind: the event waits in the journal, its lines go on.
            self._seq += 1
            entry = self._add_lines(lines, None) if lines else None
            cmds = self._event_commands(ch) + extra
            self._journal_txn(_Txn(self._seq, self._with_marker(cmds, lines, self._seq), entry, 0.0))
            return
        cmds = self._event_commands(ch) + extra
        if self.report is None:
            if cmds:
                self._send(self._proto, cmds)
            return
        self._seq += 1
        cmds = self._with_marker(cmds, lines, self._seq)
        entry = self._add_lines(lines, self._proto) if lines else None
        txn = _Txn(self._seq, cmds, entry, self.reactor.seconds())
        d = self._send(self._proto, cmds)
        self._unacked.append(txn)
        d.addCallback(self._answered, txn)
        if self._journaling:
            self._journal_txn(txn)  # Redis is slow: do not wait for its answer
        else:
            self._arm_wait()

    def _lines_of(self, ch: Changes) -> list[str]:
        if self.report is None or not ch.transitions:
            return []
        return lines_of(ch.transitions, self.report.tz, self._line_skipped)

    def _line_skipped(self, t: Transition, e: Exception) -> None:
        # A call's id, never its caller's number (that is debug-level only).
        self._throttle.error(
            "report.line", "report line of {kind} {ident} skipped: {err}",
            kind=t.kind, ident=t.uniqueid if t.kind == "CALL" else t.ident, err=str(e))

    def _with_marker(self, cmds: list[Command], lines: list[str], seq: int) -> list[Command]:
        """The event's commands, its report lines for the outbox, and its number."""
        if lines:
            cmds.append([b"RPUSH", self.keys.outbox, *(encode(x) for x in lines)])
        cmds.append([b"SET", self.keys.applied, self._marker(seq)])
        return cmds

    def _marker(self, seq: int) -> bytes:
        return f"{self._epoch}:{seq}".encode()

    def _add_lines(self, lines: list[str], proto: RedisProtocol | None) -> _Lines:
        entry = _Lines(lines, proto)
        self._lines.append(entry)
        return entry

    def _answered(self, applied: bool, txn: _Txn) -> None:
        """Redis answered an event's transaction (or it failed)."""
        try:
            self._unacked.remove(txn)
        except ValueError:
            pass
        if applied:
            if txn.sent and self.write_observers:
                took = max(0.0, self.reactor.seconds() - txn.sent)
                for observe in self.write_observers:
                    observe(took)
            self._applied = max(self._applied, txn.seq)
            if txn.entry is not None and not txn.journaled:
                txn.entry.ready = True
            txn.commands = []
        elif not txn.journaled:
            # Redis did not take it: the journal must, before its lines go to the file.
            self._journal_txn(txn)
        self._caught_up()
        self._schedule_io()

    def _arm_wait(self) -> None:
        if self._wait_timer is not None or not self._unacked:
            return
        due = self._unacked[0].sent + self.report_wait - self.reactor.seconds()
        self._wait_timer = self.reactor.callLater(max(0.0, due), self._waited)

    def _waited(self) -> None:
        self._wait_timer = None
        if self._journaling or not self._unacked:
            return
        if self.reactor.seconds() - self._unacked[0].sent + 1e-6 < self.report_wait:
            self._arm_wait()
            return
        self._journaling = True
        assert self.journal is not None
        log.warn(
            "Redis at {url}: no answer for {wait:g} s; report lines now go to the file "
            "through the journal {journal} until Redis has caught up",
            url=str(self.url),
            wait=self.report_wait,
            journal=self.journal.path,
        )
        for txn in list(self._unacked):
            self._journal_txn(txn)

    def _caught_up(self) -> None:
        """Redis has everything: leave journal mode, empty the journal."""
        if self.state != UP or self._unacked or self._to_journal or self.journal is None:
            return
        if self._applied >= self._journaled and self.journal.size:
            self.journal.clear()
        if self._journaling:
            self._journaling = False
            log.info("Redis at {url} answers again; report lines wait for it again", url=str(self.url))

    def _journal_txn(self, txn: _Txn) -> None:
        if txn.journaled or txn.queued:
            return
        txn.queued = True
        self._to_journal.append(txn)
        self._schedule_io()

    # ------------------------------------------------------------------ journal and file

    def _schedule_io(self) -> None:
        # Once per reactor turn: one journal write and one report write (and
        # at most one fsync each) for everything that became due in the turn.
        if self._io_call is None and not self._stopping:
            self._io_call = self.reactor.callLater(0, self._run_io)

    def _run_io(self) -> None:
        if self._io_call is not None and self._io_call.active():
            self._io_call.cancel()
        self._io_call = None
        if self.report is None:
            return
        stuck = False
        if self._to_journal:
            assert self.journal is not None
            batch = self._to_journal
            if self.journal.append([encode_record(self._epoch, t.seq, t.commands) for t in batch]):
                self._to_journal = []
                for t in batch:
                    t.journaled = True
                    t.commands = []
                    self._journaled = max(self._journaled, t.seq)
                    if t.entry is not None:
                        t.entry.ready = True
            else:
                stuck = True
        if not self._drain_lines():
            stuck = True
        self._caught_up()
        if stuck and self._io_retry is None and not self._stopping:
            self._io_retry = self.reactor.callLater(REPORT_RETRY, self._retry_io)

    def _retry_io(self) -> None:
        self._io_retry = None
        self._run_io()

    def _drain_lines(self) -> bool:
        """Write the due lines in order; False if some are held (the disk refused)."""
        assert self.report is not None
        due: list[_Lines] = []
        for entry in self._lines:
            if not entry.ready:
                break
            due.append(entry)
        if not due:
            return True
        text = [line for entry in due for line in entry.lines]
        # The write on the reactor (a kill after it loses nothing: the page
        # cache, and the outbox until trimmed); its fsync in a thread, shared
        # by the turns that end while one runs, and only then the outbox trim.
        # Stopping, it is done inline: the trim must go out before we close.
        off_thread = not self._stopping
        written = self.report.write_lines(text, fsync=None if not off_thread else False)
        trim = 0
        proto = self._proto
        live = proto is not None and proto.connected
        for entry in due:
            if written <= 0:
                break
            n = min(written, len(entry.lines))
            written -= n
            if live and entry.proto is proto:
                trim += n
            if n == len(entry.lines):
                self._lines.popleft()
            else:
                entry.lines = entry.lines[n:]
        if trim and proto is not None:
            if off_thread:
                synced = self.report.sync_off_thread(self.reactor)
                self._syncs.add(synced)
                synced.addBoth(self._synced, synced, proto, trim, self._outbox_epoch)
            else:
                self._trim_outbox(proto, trim)
        elif written and off_thread:
            synced = self.report.sync_off_thread(self.reactor)
            self._syncs.add(synced)
            synced.addBoth(self._synced, synced, None, 0, 0)
        return not self._lines or not self._lines[0].ready

    def _synced(
        self, ok: Any, synced: defer.Deferred, proto: RedisProtocol | None, trim: int, epoch: int
    ) -> None:
        self._syncs.discard(synced)
        # A failed sync (logged by the writer) trims all the same: the lines are
        # in the file for any kill, and a trim left out would leave the outbox
        # holding lines the file has, which a start would then append again.
        if proto is not None and proto is self._proto and proto.connected and epoch == self._outbox_epoch:
            self._trim_outbox(proto, trim)

    def _trim_outbox(self, proto: RedisProtocol, trim: int) -> None:
        # In the file now: drop them from the outbox (the oldest: it is FIFO).
        d = proto.execute_command(
            b"LTRIM", self.keys.outbox, str(trim).encode(), b"-1", apply_timeout=False
        )
        d.addErrback(lambda _: None)  # if lost, the next full write rewrites the outbox

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
        counters = self.center.pbx_counters
        if counters.dirty:
            counters.dirty = False  # rides in this transaction (core/pbx_counters.py)
            if counters.baseline is None:
                dels.append(keys.counters)
            else:
                sets += (keys.counters, dumps(counters.baseline.to_record()))
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
        self.last_error = WRITE_REFUSED + _reason(failure.value)
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
        seq = self._seq
        for entry in self._lines:
            entry.proto = proto  # the full write puts them in this connection's outbox
        self.state = UP
        self.full_syncs += 1
        if not await self._send(proto, cmds):
            return  # retried later with _pending_days still held
        self._applied = max(self._applied, seq)
        self._caught_up()
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
            stale.append(keys.outbox)
        for chunk in _chunks(stale):
            cmds.append([b"DEL", *chunk])
        if self.report is not None:
            # A trim still waiting for its fsync counted the outbox this replaces.
            self._outbox_epoch += 1
            # The outbox becomes exactly the lines not in the file yet (held by
            # a full disk, or waiting), in order; they are trimmed once written.
            held = [encode(line) for entry in self._lines for line in entry.lines]
            for chunk in _chunks(held):
                cmds.append([b"RPUSH", keys.outbox, *chunk])
            cmds.append([b"SET", keys.applied, self._marker(self._seq)])
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
        baseline = self.center.pbx_counters.baseline
        self.center.pbx_counters.dirty = False
        if baseline is None:
            cmds.append([b"DEL", keys.counters])
        else:
            cmds.append([b"SET", keys.counters, dumps(baseline.to_record())])
        for part in self._parts:
            cmds += part.full_commands()
        return cmds

    # ------------------------------------------------------------------ loading

    async def _recover_outbox(self, proto: RedisProtocol) -> None:
        """A previous process's journal and outbox: Redis and the file get what they lack."""
        if self.report is None or self.journal is None:
            return
        await reading.replay_journal(proto, self.keys, self.journal.path)
        missing = await reading.recover_outbox(
            proto, self.keys, self.report.path, self._report_start
        )
        if missing:
            # Written first, in order; held (and kept in the outbox) if the disk refuses.
            entry = _Lines(missing, None)  # the outbox is rewritten after the load
            entry.ready = True
            self._lines.appendleft(entry)
            self._drain_lines()
        if not self._lines:
            self.journal.clear()

    async def _read_and_restore(self, proto: RedisProtocol) -> None:
        await self._recover_outbox(proto)
        for part in self._parts:
            await part.load(proto)
        fetched = await reading.fetch_state(
            proto, self.keys, self.center.book.day, self._broken_logged
        )
        # From the first record decoded to the restored state frozen: one
        # synchronous step with the collector paused (callcenter/gcpause.py);
        # re-enabled in between, it walked the 30,000 new records twice.
        with gcpause.paused():
            saved = reading.decode_state(
                fetched, self.keys, Window(self.reactor.seconds(), self.max_record_age)
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
            self.center.restore(agents, calls, conns, books.values(), saved.counters)
            gcpause.freeze_loaded_state()  # the loaded state lives long: see gcpause
        for part in self._parts:
            part.restored()
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
            held = [encode(line) for entry in self._lines for line in entry.lines]
            if held:
                cmds.append([b"RPUSH", self.keys.outbox, *held])
            for entry in self._lines:
                entry.proto = proto
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
        for part in self._parts:
            await part.load(proto)
        saved = await reading.read_state(
            proto, self.keys, self.center.book.day, self._broken_logged,
            Window(self.reactor.seconds(), self.max_record_age),
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
                None,  # the counters' baseline no longer matches the merged counts
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
    """One event's report lines, until they are in the file."""

    __slots__ = ("lines", "proto", "ready")

    def __init__(self, lines: list[str], proto: RedisProtocol | None) -> None:
        self.lines = lines
        self.proto = proto  # the connection whose outbox holds them (None: not in Redis)
        self.ready = False  # Redis or the journal has the event: the file may have them


class _Txn:
    """One event's transaction, until Redis or the journal has it."""

    __slots__ = ("seq", "commands", "entry", "sent", "journaled", "queued")

    def __init__(self, seq: int, commands: list[Command], entry: _Lines | None, sent: float) -> None:
        self.seq = seq
        self.commands = commands
        self.entry = entry
        self.sent = sent
        self.journaled = False
        self.queued = False  # waiting for the journal


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
