"""The PBX's own queue counters as the correction for callers we lost sight of.

Without a queue log, a caller we knew as waiting who is gone from the PBX at a
reconcile was either answered (and finished) or left unanswered while we were
not listening.  app_queue counts both per queue (``QueueParams``: ``Completed``
grows when an answered call ends, ``Abandoned`` when an entry ends unanswered,
timeouts included; see ``callcenter.ami.events.QueueCounters``).  At every
reconcile we keep a *baseline*: Asterisk's two counters and, beside them, what
we had counted ourselves (completed, and abandoned + timeout), per queue.  At
the next reconcile::

    answered unexplained = (Completed now - then) - (our completed now - then)
    unanswered unexplained = (Abandoned now - then) - (our abandoned+timeout now - then)

are exactly the ends we did not see, per queue.  The vanished callers take
them: those whose channel the PBX still has (alive, out of every queue, with
no agent) left without hanging up, so they take unanswered ends as timeouts;
then the longest-waiting take the answered ends (app_queue offers a queue's
callers in order; which caller really got which outcome is not knowable) and
the rest are abandoned (a timeout followed by a hang-up can not be told from
an abandon once the channel is gone: one counter holds both); what is left
over are callers who came and went entirely while we were away: counted
received and answered or abandoned, with no report line (we never learnt who
they were).  Per queue the counts are exact; every per-call second is an
estimate (see ``settle``; docs/reliability.md).

When Asterisk's counters went down (``queue reset stats``, a module unload,
an Asterisk restart), when there is no baseline yet, or when the figures do
not add up, the vanished callers get the old rule (abandoned at the reconcile)
and a warning says why.  The baseline is state: the Redis store keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from callcenter.ami.events import QueueCounters
from callcenter.core.counting import Tally, whole
from callcenter.model import Call

log = Logger()

#: At most this many callers per queue and reconcile are counted as having come
#: and gone unseen (--counters-max-unseen); beyond it the figures are not believed.
MAX_UNSEEN = 10_000
#: Largest counter value a stored baseline may hold (app_queue's are C ints).
MAX_COUNT = 2**31 - 1

# (completed, abandoned + timeout) of one queue.
Pair = tuple[int, int]


@dataclass
class Baseline:
    """Asterisk's counters at the last reconcile and ours at the same moment."""

    asterisk: dict[str, Pair] = field(default_factory=dict)  # queue -> (Completed, Abandoned)
    ours: dict[str, dict[str, Pair]] = field(default_factory=dict)  # day -> queue -> pair

    def to_record(self) -> dict[str, Any]:
        return {
            "asterisk": {q: list(p) for q, p in sorted(self.asterisk.items())},
            "ours": {d: {q: list(p) for q, p in sorted(qs.items())} for d, qs in sorted(self.ours.items())},
        }

    @classmethod
    def from_record(cls, rec: Any) -> Baseline:
        """Strict: anything but what ``to_record`` wrote raises ValueError."""
        if not isinstance(rec, dict) or set(rec) != {"asterisk", "ours"}:
            raise ValueError("not a counters baseline")
        asterisk = _pairs(rec["asterisk"])
        ours = rec["ours"]
        if not isinstance(ours, dict) or len(ours) > 16:
            raise ValueError("bad 'ours' in counters baseline")
        return cls(asterisk, {_text(d): _pairs(qs) for d, qs in ours.items()})


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 128 or not value.isprintable():
        raise ValueError(f"bad name {str(value)[:24]!r} in counters baseline")
    return value


def _pairs(value: Any) -> dict[str, Pair]:
    if not isinstance(value, dict) or len(value) > 10_000:
        raise ValueError("bad queue map in counters baseline")
    out: dict[str, Pair] = {}
    for queue, pair in value.items():
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(type(n) is int and 0 <= n <= MAX_COUNT for n in pair)
        ):
            raise ValueError(f"bad counters for queue {str(queue)[:24]!r}")
        out[_text(queue)] = (pair[0], pair[1])
    return out


@dataclass
class Settled:
    """What one reconcile's correction did, for the log line and tests."""

    answered: int = 0  # vanished callers counted answered
    abandoned: int = 0  # vanished callers counted abandoned by Asterisk's counters
    timeout: int = 0  # vanished callers still alive: left their queue unanswered
    old_rule: int = 0  # vanished callers given the old rule (abandoned at reconcile)
    unseen_answered: int = 0  # came and went while we were away
    unseen_abandoned: int = 0
    estimated_lines: int = 0  # report lines whose seconds are estimates
    warnings: list[str] = field(default_factory=list)


class PbxCounters:
    """Owns the baseline; classifies vanished waiting callers at reconcile."""

    def __init__(
        self,
        tally: Tally,
        answer_unseen: Callable[[Call, int, int, float], None],
        abandon_unseen: Callable[[Call, float], None],
        time_out_unseen: Callable[[Call, float], None],
        max_unseen: int = MAX_UNSEEN,
    ) -> None:
        self.tally = tally
        self._answer = answer_unseen  # (call, hold, talk, ts): answered and ended unseen
        self._abandon = abandon_unseen  # (call, ts): the old rule, hold measured to ts
        self._time_out = time_out_unseen  # (call, ts): left the queue alive, hold to ts
        self.max_unseen = max_unseen  # 0: the mode is off, every vanished caller gets the old rule
        self.baseline: Baseline | None = None  # None: the PBX gave no counters
        # Changed since the store last wrote it.  Not a change of its own: a
        # reconcile that corrected nothing leaves a baseline equivalent to the
        # last one written (every count in between was explained), so it rides
        # with the next transaction; one that corrected counts changed a day too.
        self.dirty = False
        self.last: Settled | None = None

    def restore(self, baseline: Baseline | None) -> None:
        self.baseline = baseline
        self.dirty = False

    def _ours(self) -> dict[str, dict[str, Pair]]:
        books = [*self.tally.past.values(), self.tally.book]
        return {
            b.day: {q: (c.completed, c.abandoned + c.timeout) for q, c in b.queues.items()}
            for b in books
            if b.queues
        }

    def _seen(self, queue: str, then: dict[str, dict[str, Pair]]) -> Pair:
        """What we counted in ``queue`` since the baseline, over every day we hold."""
        done = gone = 0
        for day, queues in self._ours().items():
            now = queues.get(queue, (0, 0))
            before = then.get(day, {}).get(queue, (0, 0))
            done += now[0] - before[0]
            gone += now[1] - before[1]
        return done, gone

    def settle(
        self,
        vanished: Iterable[Call],
        queues: dict[str, QueueCounters],
        ts: float,
        alive: Collection[str] | None = None,
    ) -> Settled:
        """Give each vanished waiting caller its outcome, then keep the new baseline.

        ``alive``: the uniqueids of the PBX's channels now running something
        other than Queue() (CoreShowChannels; None when it did not answer).  A
        vanished caller among them left its queue without hanging up."""
        out = Settled()
        alive = alive if alive is not None else ()
        by_queue: dict[str, list[Call]] = {}
        for call in vanished:
            by_queue.setdefault(call.queue, []).append(call)
        base = self.baseline
        for queue in sorted(set(by_queue) | set(queues)):
            calls = sorted(by_queue.get(queue, []), key=lambda c: (c.entered or ts, c.id))
            why = self._unusable(queue, queues, base)
            if why is None:
                assert base is not None
                why = self._correct(queue, calls, queues[queue], base, ts, out, alive)
            if why is not None:
                if calls:
                    out.warnings.append(f"{queue}: {why}")
                    log.warn(
                        "queue {q}: {n} callers gone while we were away counted abandoned, "
                        "or timed out if still alive (the rule without counters): {why}",
                        q=queue, n=len(calls), why=why,
                    )
                for call in calls:
                    if call.id in alive:
                        # Not hung up, so not an abandon, whatever the counters say.
                        self._time_out(call, ts)
                        out.timeout += 1
                    else:
                        self._abandon(call, ts)
                        out.old_rule += 1
                    out.estimated_lines += 1
        self._keep(queues)
        if by_queue or out.unseen_answered or out.unseen_abandoned:
            log.info(
                "catch-up from Asterisk's queue counters: {a} answered, {b} abandoned, {t} timed "
                "out, {o} by the rule without counters, {ua} answered and {ub} abandoned unseen; "
                "{lines} report lines with estimated seconds",
                a=out.answered, b=out.abandoned, t=out.timeout, o=out.old_rule,
                ua=out.unseen_answered, ub=out.unseen_abandoned, lines=out.estimated_lines,
            )
        self.last = out
        return out

    def _unusable(
        self, queue: str, queues: dict[str, QueueCounters], base: Baseline | None
    ) -> str | None:
        if self.max_unseen <= 0:
            return "the counters mode is off (--counters-max-unseen 0)"
        if queue not in queues:
            return "the PBX gave no valid QueueParams for the queue"
        if base is None or queue not in base.asterisk:
            return "no earlier counters of the queue to compare with"
        now, then = queues[queue], base.asterisk[queue]
        if now.completed < then[0] or now.abandoned < then[1]:
            # queue reset stats / QueueReset, module unload, Asterisk restart.
            log.warn(
                "queue {q}: Asterisk's counters went down (Completed {c0} -> {c1}, "
                "Abandoned {a0} -> {a1}): reset; not used this time",
                q=queue, c0=then[0], c1=now.completed, a0=then[1], a1=now.abandoned,
            )
            return "Asterisk's counters were reset"
        return None

    def _correct(
        self,
        queue: str,
        calls: list[Call],
        now: QueueCounters,
        base: Baseline,
        ts: float,
        out: Settled,
        alive: Collection[str],
    ) -> str | None:
        then = base.asterisk[queue]
        seen_done, seen_gone = self._seen(queue, base.ours)
        done = now.completed - then[0] - seen_done
        gone = now.abandoned - then[1] - seen_gone
        if done < 0 or gone < 0:
            return f"we counted more than Asterisk did (completed {done}, unanswered {gone})"
        if done + gone < len(calls):
            return f"Asterisk counted {done + gone} ends for {len(calls)} callers gone"
        if done + gone - len(calls) > self.max_unseen:
            return f"{done + gone - len(calls)} unseen callers is more than --counters-max-unseen"
        # A caller still alive, out of every queue and bridged with nobody, left
        # this queue without hanging up: app_queue counted it in Abandoned (a
        # timeout, EXITEMPTY or WITHDRAW: record_abandoned()), and it is not an
        # abandon (DESIGN.md: ended by the caller).  Exact as far as the unanswered
        # ends cover them; the dialplan's "continue after the agent hung up" ('c')
        # is the one way such a caller could instead have been answered.
        timeouts = [c for c in calls if c.id in alive][:gone]
        for call in timeouts:
            self._time_out(call, ts)
            out.timeout += 1
            out.estimated_lines += 1
        if timeouts:
            left = {c.id for c in timeouts}
            calls = [c for c in calls if c.id not in left]
            gone -= len(timeouts)
        answered = min(done, len(calls))
        talk_mean = now.talktime or 0
        for call in calls[:answered]:
            # Ended at the reconcile after the queue's mean talk (Asterisk's TalkTime):
            # the one place in time we can put it.  Both seconds are estimates.
            entered = call.entered if call.entered is not None else ts
            answered_at = max(entered, ts - talk_mean)
            self._answer(call, whole(answered_at - entered), whole(ts - answered_at), ts)
            out.answered += 1
            out.estimated_lines += 2
        for call in calls[answered:]:
            self._abandon(call, ts)
            out.abandoned += 1
            out.estimated_lines += 1
        unseen_done, unseen_gone = done - answered, gone - (len(calls) - answered)
        self._count_unseen(queue, unseen_done, unseen_gone, now)
        out.unseen_answered += unseen_done
        out.unseen_abandoned += unseen_gone
        return None

    def _count_unseen(self, queue: str, done: int, gone: int, now: QueueCounters) -> None:
        """Callers who entered and left while we were away: counted today, with
        Asterisk's mean hold and talk as their seconds (no report line: no id)."""
        day = self.tally.book.day
        hold, talk = now.holdtime or 0, now.talktime or 0
        for _ in range(done):
            self.tally.entry(day, queue)
            self.tally.answer(day, queue, hold)
            self.tally.complete(day, queue, talk)
        for _ in range(gone):
            self.tally.entry(day, queue)
            self.tally.abandon(day, queue, hold)

    def _keep(self, queues: dict[str, QueueCounters]) -> None:
        # A queue the PBX did not report (or reported badly) leaves the baseline:
        # its next reconcile has nothing to compare with, rather than a wrong base.
        asterisk = {q: (c.completed, c.abandoned) for q, c in queues.items()}
        ours = {
            day: {q: pair for q, pair in qs.items() if q in asterisk}
            for day, qs in self._ours().items()
        }
        new = Baseline(asterisk, {d: qs for d, qs in ours.items() if qs}) if asterisk else None
        if new != self.baseline:
            self.baseline = new
            self.dirty = True


__all__ = ["MAX_UNSEEN", "Baseline", "PbxCounters", "Settled"]
