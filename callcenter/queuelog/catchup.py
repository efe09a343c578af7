"""Filling the gaps in AMI from Asterisk's queue_log (issue 14).

AMI does not replay what happened while nobody listened; the queue log does.
``QueueLogCatchup`` follows the file all the time and has two modes:

- ``FOLLOW`` (AMI up): lines are only *passed over*, never counted — AMI is
  the source.  It moves past a line only once AMI has certainly delivered
  its event (the line is older than the last applied event minus ``SKEW``),
  so the position it saves is always safe to resume from;
- ``REPLAY`` (from the service's start, and from every AMI disconnect, until
  the next login's catch-up reached the end of the file): the Callcenter
  holds live events and reconciles back (``Callcenter.hold``); lines not yet
  applied are turned into the ordinary domain events (``mapping.py``) and
  applied through ``Callcenter.apply_replayed`` — same rules, same counts,
  same report lines.  Once the file is read to its end after a login, the
  held AMI events and the resync's reconcile are applied, in order.

"Not yet applied" is decided by the ``Cursor``: the whole second of the last
applied event (``mark``) and the identities (verb, uniqueid or member,
queue: ``mapping.event_key``) of the events applied in the last few seconds.
Entries older than ``mark - SKEW`` are done; entries within ``SKEW`` of it
are skipped when their identity is among those; later ones are replayed,
unless a held AMI event has the same identity (it is applied after).  The
cursor (with the file position and its first-line fingerprint) is written to
Redis inside each event's own transaction, so a SIGKILL at any moment
neither repeats nor loses an entry.

A first start with nothing in Redis rebuilds today's figures from the start
of the business day (issue 14, point 4).

The IVR (NA) lines: app_queue logs nothing before ENTERQUEUE, so the time a
caller entered the IVR (the dialplan's UserEvent CALLER) comes from the
shipped dialplan's own ``CALLER`` line (``QueueLog()`` beside the UserEvent):
exact.  A dialplan without that line but whose callers AMI showed as
announced (``Cursor.callers``) gets, for a caller who arrived during a gap,
an NA line estimated to start at its ENTERQUEUE (the shipped dialplan sends
CALLER just before ``Queue()``); an NA line whose end (the hang-up) fell in
a gap is ended by the reconcile, also an estimate.  Both are counted.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from callcenter.ami import events as ev
from callcenter.center import Callcenter
from callcenter.core.changes import Changes
from callcenter.logthrottle import LogThrottle
from callcenter.model import NA
from callcenter.queuelog.entries import Entry
from callcenter.queuelog.follow import CHUNK, Position, QueueLogFollower
from callcenter.queuelog.mapping import Newcomers, entry_key, event_key, to_events
from callcenter.queuelog.persist import CursorDelta

log = Logger()

FOLLOW, REPLAY = "follow", "replay"
#: Seconds between polls of the file.
POLL = 1.0
#: Whole seconds by which a queue_log time and the AMI Timestamp of the same
#: event may differ (time(NULL) vs. the event's tvnow, at a second boundary).
SKEW = 1
#: Identities of recently applied events kept in the cursor (a bound: at most
#: this many are written with each event).
MAX_KEYS = 2000
#: Live events held back while a catch-up runs; past it they are let through
#: (the catch-up then only fills in behind them, with a warning).
MAX_HELD = 100_000
#: Recent queue exits (ABANDON vs. EXITWITHTIMEOUT…) remembered for the flow's
#: abandon-or-timeout decision.
MAX_EXITS = 1000
_EXIT_VERBS = frozenset({"ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY", "EXITWITHKEY"})
#: What is known of the dialplan's UserEvent CALLER (``Cursor.callers``):
#: the queue log has its ``CALLER`` lines (exact NA lines), or only AMI has
#: shown the shipped dialplan's UserEvents (NA lines of callers who arrived
#: during a gap are estimated); unknown (None): neither seen yet, no NA line
#: is made up (the dialplan may send no UserEvents at all, FreePBX-style).
CALLERS_LOG, CALLERS_AMI = "log", "ami"
#: The shipped dialplan's UserEvents (CALLER, LOGGEDIN, LOGGEDOUT; CALLERHANGUP
#: is not told from a Hangup here): one seen over AMI means it sends CALLER.
_DIALPLAN_EVENTS = (ev.CallerAnnounced, ev.AgentLoggedIn, ev.AgentLoggedOut)


class Cursor:
    """How far the queue log was read, and what was applied last (persisted by
    ``persist.CursorPart`` with each event)."""

    def __init__(self) -> None:
        self.position: Position | None = None
        self.mark: int | None = None  # whole second of the last applied event
        self.keys: dict[str, int] = {}  # identity -> second, within 2 * SKEW of mark
        self.restored = False  # Redis had one
        self.callers: str | None = None  # CALLERS_LOG, CALLERS_AMI or unknown
        self._added: list[tuple[str, int]] = []
        self._dropped: list[str] = []

    def note(self, key: str | None, second: int) -> None:
        if self.mark is None or second > self.mark:
            self.mark = second
            old = [k for k, s in self.keys.items() if s < second - 2 * SKEW]
            for k in old:
                del self.keys[k]
            self._dropped += old
        if key is not None and second >= self.mark - 2 * SKEW:
            self.keys[key] = second
            self._added.append((key, second))
            while len(self.keys) > MAX_KEYS:
                oldest = next(iter(self.keys))
                del self.keys[oldest]
                self._dropped.append(oldest)

    def applied(self, key: str | None, second: int) -> bool:
        """An entry at ``second`` with this identity was already applied."""
        assert self.mark is not None
        if second < self.mark - SKEW:
            return True
        return key is not None and second <= self.mark + SKEW and key in self.keys

    def state_record(self) -> bytes:
        pos = self.position or Position(0, "")
        return json.dumps(
            {"v": 1, "offset": pos.offset, "fp": pos.fingerprint, "mark": self.mark,
             "callers": self.callers},
            separators=(",", ":"),
        ).encode()

    def take_delta(self) -> CursorDelta:
        """The state now and the identities added/dropped since the last delta."""
        delta = CursorDelta(self.state_record(), self._added, self._dropped)
        self._added, self._dropped = [], []
        return delta

    def restore(self, raw: bytes | str | None, applied: list[tuple[Any, Any]] = ()) -> None:  # type: ignore[assignment]
        if raw is None:
            return
        try:
            d = json.loads(raw)
            offset, fp, mark = d["offset"], d["fp"], d["mark"]
            callers = d.get("callers")  # absent in records written before it
            if not (isinstance(offset, int) and 0 <= offset < 2**53 and isinstance(fp, str)
                    and len(fp) <= 64 and (mark is None or isinstance(mark, int) and 0 <= mark < 2**40)
                    and callers in (None, CALLERS_LOG, CALLERS_AMI)):
                raise ValueError("out of range")
            keys = {}
            for k, s in applied:
                key = k.decode() if isinstance(k, bytes) else str(k)
                second = int(s)
                if len(key) <= 400 and mark is not None and second >= mark - 2 * SKEW:
                    keys[key] = second
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as e:
            log.warn("queue-log cursor in Redis is unusable ({err}); ignored", err=e)
            return
        self.position = Position(offset, fp)
        self.mark, self.keys, self.restored = mark, dict(list(keys.items())[-MAX_KEYS:]), True
        self.callers = callers


class QueueLogCatchup:
    def __init__(
        self,
        clock: Any,
        center: Callcenter,
        path: str,
        *,
        poll: float = POLL,
        chunk: int = CHUNK,
        max_held: int = MAX_HELD,
    ) -> None:
        self.clock = clock
        self.center = center
        self.poll = poll
        self.max_held = max_held
        self.follower = QueueLogFollower(path, chunk=chunk, clock=clock)
        self.cursor = Cursor()
        center.on_applied = self._noted
        center.flow.exit_verdict = self._exit_verdict
        self._exits: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.mode = FOLLOW
        self._draining = False  # AMI is back: read to the end, then let it through
        self._timer: IDelayedCall | None = None
        self._replay_key: tuple[str | None, int] | None = None
        self._held_seen = 0
        self._held_keys: set[str] = set()
        self._held_callers: dict[str, ev.CallerAnnounced] = {}  # held UserEvent CALLERs by uid
        self._newcomers = Newcomers()  # agents the log named by interface alone (mapping.py)
        self._throttle = LogThrottle(log, clock)
        self._running = False
        self._unsubscribe: Any = None
        self._stats = _Stats()
        self.catchups = 0  # completed catch-ups (for tests and health)
        self.estimated_last = 0  # entries of the last catch-up whose seconds were measured
        #: Report lines with estimated seconds since the start: measured hold/talk,
        #: IVR (NA) starts and IVR lines the reconcile ended (for tests and health).
        self.estimated_lines = 0
        # IVR (NA) calls left open by a catch-up: if the reconcile after it ends
        # them (no hang-up reached us), their NA line's length is an estimate.
        self._open_ivr: set[str] = set()

    # ------------------------------------------------------------ life cycle

    def start(self, store_loaded: bool = True) -> None:
        """After the store loaded (the cursor is restored); before AMI connects."""
        if self.cursor.mark is None:
            now = self.clock.seconds()
            if store_loaded and self._nothing_today():
                start = int(self.center.business_day.start_of(now))
                self.cursor.mark = start - SKEW - 1
                log.info(
                    "queue log: no saved state: rebuilding today's figures from {p} since "
                    "the start of the business day",
                    p=self.follower.path,
                )
            else:
                self.cursor.mark = int(now)
                log.warn(
                    "queue log: no saved position but saved state (or Redis unreadable): "
                    "following {p} from now on, nothing before is replayed",
                    p=self.follower.path,
                )
        self.follower.restore(self.cursor.position)
        self._running = True
        self._unsubscribe = self.center.subscribe(self._count)
        self._enter_replay()

    def stop(self) -> None:
        self._running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.center.holding:
            self.center.release()
        self.follower.close()

    def on_disconnect(self) -> None:
        """AMI lost: from now on the queue log is the source, until the next catch-up."""
        if self._running and self.mode == FOLLOW:
            self._enter_replay()

    def on_login(self) -> None:
        """AMI logged in again (a connect hook, registered before the resync's):
        read the file to its end, then let the held events and reconcile through."""
        if self._running and self.mode == REPLAY:
            self._draining = True
            self._schedule(0)

    def _enter_replay(self) -> None:
        self.mode = REPLAY
        self._draining = False
        self._stats = _Stats()
        self.center.hold()
        self._held_seen, self._held_keys, self._held_callers = 0, set(), {}
        self._newcomers.clear()
        self._schedule(0)

    def _finish(self) -> None:
        self.mode = FOLLOW
        self._draining = False
        self.catchups += 1
        s = self._stats
        if s.entries:
            log.info(
                "queue log catch-up: {n} entries replayed ({first} to {last}): {r} calls "
                "entered, {a} answered, {b} abandoned, {t} timed out, {l} report lines, "
                "{e} with estimated seconds ({i} of them IVR lines whose start is estimated)",
                n=s.entries, first=s.first, last=s.last, r=s.received, a=s.answered,
                b=s.abandoned, t=s.timeouts, l=s.lines, e=s.estimated + s.ivr, i=s.ivr,
            )
        if len(self._newcomers):
            log.info(
                "queue log catch-up: {n} agents joined a queue by interface and no line named "
                "them: the reconcile brings them in",
                n=len(self._newcomers),
            )
            self._newcomers.clear()
        self.estimated_last = s.estimated + s.ivr
        self.estimated_lines += s.estimated + s.ivr
        self._watch_ivr()
        self.center.release()

    def _watch_ivr(self) -> None:
        """Callers still in the IVR as far as we know: their NA line ends with a
        hang-up AMI shows (exact), or, gone from the PBX, at the reconcile."""
        self._open_ivr = {uid for uid, c in self.center.calls.items() if c.status == NA}
        if self._open_ivr:
            self.center.when_reconciled().addCallback(self._ivr_reconciled)

    def _ivr_reconciled(self, _: object) -> None:
        gone = [uid for uid in self._open_ivr if uid not in self.center.calls]
        self._open_ivr = set()
        if gone:
            self.estimated_lines += len(gone)
            log.info(
                "queue log catch-up: {n} IVR (NA) lines ended at the reconcile: the caller "
                "hung up while we were away, when is not in the queue log (estimated: an "
                "upper bound)",
                n=len(gone),
            )

    # ------------------------------------------------------------ the poll

    def _schedule(self, delay: float) -> None:
        if not self._running:
            return
        if self._timer is not None and self._timer.active():
            if delay > 0:
                return
            self._timer.cancel()
        self._timer = self.clock.callLater(delay, self._step)

    def _step(self) -> None:
        self._timer = None
        try:
            more = self._read_once()
        except OSError as e:
            self._throttle.warn("queuelog-read", "queue log {p}: {err}", p=self.follower.path, err=e)
            more = False
            if self._draining:
                self._finish()  # AMI must not wait on a file we cannot read
        except Exception:
            log.failure("queue log catch-up failed; letting AMI through")
            more = False
            if self.mode == REPLAY:
                self._finish()
        self._schedule(0 if more else self.poll)

    def _read_once(self) -> bool:
        """One bounded read; True when another should follow at once."""
        lines = self.follower.read()
        f = self.follower
        self._note_lines(lines)
        for line in lines:
            e = line.entry
            if e is not None and self.mode == FOLLOW:
                assert self.cursor.mark is not None
                if e.ts >= self.cursor.mark - SKEW:
                    break  # AMI may not have delivered it yet: not ours to pass over
            elif e is not None:
                if not self._draining and e.ts >= int(self.clock.seconds()) - SKEW:
                    # AMI is away: replay what is over a second old.  A line of the
                    # current second may be newer than the snapshot the coming
                    # resync takes; read during its catch-up, it counts as newer.
                    break
                self._replay(e, f.position, Position(line.end, f.position.fingerprint))
            f.consume(line.end)
            self.cursor.position = f.position
        else:
            if self.mode == REPLAY:
                if len(self.center.held_events) > self.max_held:
                    self._throttle.warn(
                        "queuelog-held", "queue log catch-up is behind by over {n} AMI events: "
                        "letting them through", n=self.max_held,
                    )
                    self._finish()
                    return False
                if self._draining and not lines:
                    self._finish()
                    return False
            return bool(lines)
        return False

    def _replay(self, e: Entry, before: Position, after: Position) -> None:
        key = entry_key(e, self.center.roster)
        if self.cursor.applied(key, e.ts) or (key is not None and key in self._live_keys()):
            return
        try:
            events, estimated = to_events(e, self.center.roster, self._newcomers)
        except ev.Invalid as err:
            self._throttle.warn("queuelog-entry", "queue log: ignored {verb}: {err}", verb=e.verb, err=err)
            return
        if e.verb == "ENTERQUEUE":
            self._announce_estimated(events[0], before)
        s = self._stats
        s.entries += 1
        s.first = s.first or e.ts
        s.last = e.ts
        s.estimated += estimated
        kind = key.split("|", 1)[0] if key else ""
        if kind == "join":
            s.received += 1
        elif kind == "connect":
            s.answered += 1
        elif kind == "exit":
            if e.verb == "ABANDON":
                s.abandoned += 1
            else:
                s.timeouts += 1
        self.cursor.position = after  # written with the event it applies
        self._replay_key = (key, e.ts)
        try:
            for event in events:
                self.center.apply_replayed(event)
        finally:
            self._replay_key = None

    def _announce_estimated(self, join: ev.Event, before: Position) -> None:
        """A caller we never saw in the IVR joins: when AMI showed the dialplan's
        UserEvents but the log has no CALLER lines, its NA line would be
        lost.  The shipped dialplan sends CALLER just before Queue(): the IVR is
        taken to have begun at the entry (an estimate, counted).  The flow's own
        rule (``caller_announced``) still decides: nothing for a call it has or
        ended (a transferred caller's next entry has no NA line, as over AMI)."""
        assert isinstance(join, ev.CallerJoined)
        if join.uid in self.center.calls or self.center.callbook.ended(join.uid):
            return
        self._live_keys()
        # Its UserEvent CALLER may be held already (an entry of this very second):
        # exact, and applied first, or the entry would make it come too late.
        announce = self._held_callers.get(join.uid)
        if announce is None:
            if self.cursor.callers != CALLERS_AMI:
                return
            announce = ev.CallerAnnounced(join.uid, join.callerid, "", join.ts, join.callername)
            self._stats.ivr += 1
        # Its own identity, and the position before the line: a kill between this
        # transaction and the entry's replays the ENTERQUEUE (the call is then known).
        saved, self.cursor.position = self.cursor.position, before
        self._replay_key = (event_key(announce), int(join.ts))
        try:
            self.center.apply_replayed(announce)
        finally:
            self._replay_key = None
            self.cursor.position = saved

    def _live_keys(self) -> set[str]:
        held = self.center.held_events
        for event in held[self._held_seen :]:
            key = event_key(event)
            if key is not None:
                self._held_keys.add(key)
                if type(event) is ev.CallerAnnounced:
                    self._held_callers[event.uid] = event
        self._held_seen = len(held)
        return self._held_keys

    # ------------------------------------------------------------ hooks into the center

    def _note_lines(self, lines: list[Any]) -> None:
        """Exits for the abandon-or-timeout decision; the dialplan's CALLER lines."""
        for line in lines:
            e = line.entry
            if e is not None and e.verb == "CALLER":
                self.cursor.callers = CALLERS_LOG
            elif e is not None and e.verb in _EXIT_VERBS:
                self._exits[(e.callid, e.queue)] = e.verb
                while len(self._exits) > MAX_EXITS:
                    self._exits.popitem(last=False)

    def _exit_verdict(self, uid: str, queue: str) -> str | None:
        """How Asterisk's queue log says this entry ended ("abandon"/"timeout")."""
        verb = self._exits.get((uid, queue))
        if verb is None and self._running:
            try:
                self._note_lines(self.follower.read())  # a look ahead; nothing consumed
            except OSError:
                return None
            verb = self._exits.get((uid, queue))
        if verb is None:
            return None
        return "abandon" if verb == "ABANDON" else "timeout"

    def _noted(self, event: ev.Event) -> None:
        """Inside every applied event's transaction: the cursor moves with it."""
        if self._replay_key is not None:
            key, second = self._replay_key
        else:
            key, second = event_key(event), int(event.ts)
            if type(event) is ev.CallerAbandoned and self.center.flow.undecided(event.uid):
                key = None  # not over yet: a kill now must leave the queue log's line to replay
            elif type(event) in _DIALPLAN_EVENTS and self.cursor.callers is None:
                self.cursor.callers = CALLERS_AMI  # the shipped dialplan (it announces callers)
            if self._open_ivr:
                uid = getattr(event, "uid", "")
                call = self.center.calls.get(uid)
                if uid in self._open_ivr and (call is None or call.status != NA):
                    self._open_ivr.discard(uid)  # its NA line's end came over AMI: exact
        self.cursor.note(key, second)
        self.center.tracker.ch.cursor = self.cursor.take_delta()

    def _count(self, ch: Changes) -> None:
        if self._replay_key is not None:
            self._stats.lines += len(ch.transitions)

    def _nothing_today(self) -> bool:
        c = self.center
        return not c.agents and not c.calls and c.book.total().received == 0


class _Stats:
    def __init__(self) -> None:
        self.entries = self.received = self.answered = self.abandoned = self.timeouts = 0
        self.lines = self.estimated = 0
        self.ivr = 0  # IVR (NA) lines whose start was estimated
        self.first = self.last = 0


__all__ = ["CALLERS_AMI", "CALLERS_LOG", "FOLLOW", "MAX_HELD", "POLL", "QueueLogCatchup", "REPLAY", "SKEW", "Cursor"]
