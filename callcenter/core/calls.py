"""Calls: the one owner of the live calls, who is waiting where, and the
memory of calls that ended (so late events for them change nothing).

A call is the caller channel's Uniqueid (the ``;2`` half of a Local channel),
never parsed as a number.  Every status that ends becomes one report line
(``set_status``); the per-queue indexes follow the status here only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from callcenter.core.changes import Tracker
from callcenter.core.counting import whole
from callcenter.model import ABANDON, HANGUP, INCALL, NA, QUEUED, Call
from callcenter.report import Transition

#: How many ended call ids to remember, so late events for them are ignored.
ENDED_MEMORY = 10_000
NEW = ""  # a call created by a queue event in this very event: it had no NA phase
# Final "status" remembered for a call an agent transferred: the caller's channel
# lives on and may enter a queue again (a new queue entry, same Uniqueid).
TRANSFERRED = "transfer"


class CallBook:
    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self.calls: dict[str, Call] = {}
        self.by_queue: dict[str, set[str]] = {}
        self.waiting: dict[str, dict[str, float]] = {}  # queue -> call id -> entered
        self._ended: OrderedDict[str, str] = OrderedDict()  # call id -> final status
        # Told when a call stops being QUEUED (answered, ended, back in the IVR,
        # another queue): the ring of that caller stops on every phone.
        self.on_unqueue: Callable[[str, float], None] | None = None

    def get(self, uid: str) -> Call | None:
        return self.calls.get(uid)

    def __contains__(self, uid: str) -> bool:
        return uid in self.calls

    def __len__(self) -> int:
        return len(self.calls)

    def ended(self, uid: str) -> bool:
        return uid in self._ended

    def may_enter(self, uid: str) -> bool:
        """Whether a queue entry for ``uid`` is news: not for an ended call,
        unless an agent transferred it (then it is a new entry, same Uniqueid)."""
        ended = self._ended.get(uid)
        return ended is None or ended == TRANSFERRED

    def mark_transferred(self, uid: str) -> None:
        if uid in self._ended:
            self._ended[uid] = TRANSFERRED

    def get_or_create(self, uid: str, callerid: str, channel: str, since: float) -> Call:
        """The live call, or a new one (status NEW) first seen in a queue event,
        a QueueEntry or a bridge (FreePBX-style, or started before we were)."""
        call = self.calls.get(uid)
        if call is None:
            if self._ended.get(uid) == TRANSFERRED:
                del self._ended[uid]  # the transferred caller's next queue entry
            call = Call(id=uid, callerid=callerid, status=NEW, since=since, channel=channel)
            self.calls[uid] = call
        return call

    def announce(
        self, uid: str, callerid: str, channel: str, ts: float, callername: str = ""
    ) -> Call:
        """A caller in the IVR (status NA): known before any queue event."""
        call = self.get_or_create(uid, callerid, channel, ts)
        call.status = NA
        call.callername = callername or call.callername
        self._tracker.call(call, True)
        self._tracker.stats_dirty()
        return call

    def mark_left(self, call: Call, ts: float) -> None:
        """Out of the queue, not yet answered or ended: no longer waiting."""
        call.left = True
        call.left_at = ts
        self.unwait(call)
        self._tracker.call_record(call)  # nothing shown changed, but a restart must know

    def set_status(
        self,
        call: Call,
        status: str,
        ts: float,
        duration: int | None = None,
        queue: str | None = None,
    ) -> None:
        """``queue``: the call enters that queue now; a call already QUEUED
        elsewhere (overflow, timeout and retry) ends its wait there with a line."""
        if status == call.status and queue is None:
            return
        if duration is None:
            duration = whole(ts - call.since)
        if call.status != NEW:
            # An IVR (NA) line already names the queue the caller went on to.
            line_queue = call.queue or queue or ""
            self._tracker.transition(
                Transition(
                    "CALL", call.callerid, call.status, call.since, duration, line_queue, call.id
                )
            )
        if call.status == QUEUED:
            self.unwait(call)
            if self.on_unqueue is not None:
                self.on_unqueue(call.id, ts)
        if queue is not None:
            self._index_queue(call, queue)
        call.status, call.since = status, ts
        if status == QUEUED:
            waiting = self.waiting.setdefault(call.queue, {})
            waiting[call.id] = call.entered or ts
            call.position = len(waiting)
        if status in (HANGUP, ABANDON):
            self._forget(call)
        self._tracker.call(call, call.id in self.calls)
        self._tracker.stats_dirty()

    def unwait(self, call: Call) -> None:
        waiting = self.waiting.get(call.queue)
        if waiting is not None and waiting.pop(call.id, None) is not None:
            if not waiting:
                del self.waiting[call.queue]
            else:
                self._renumber(waiting, call.position)
            self._tracker.stats_dirty()
        call.position = 0

    def _renumber(self, waiting: dict[str, float], gone: int) -> None:
        """The callers behind one who stopped waiting move up one place (only they
        change: those ahead keep theirs).  Waiting order is arrival order."""
        calls = self.calls
        for place, uid in enumerate(waiting, 1):
            if place < gone:
                continue
            call = calls.get(uid)
            if call is not None and call.position != place:
                call.position = place
                self._tracker.call(call, True)

    def _index_queue(self, call: Call, queue: str) -> None:
        if call.queue and call.queue != queue:
            self._unindex(call)
        call.queue = queue
        self.by_queue.setdefault(queue, set()).add(call.id)

    def _unindex(self, call: Call) -> None:
        calls = self.by_queue.get(call.queue)
        if calls is not None:
            calls.discard(call.id)
            if not calls:
                del self.by_queue[call.queue]

    def _forget(self, call: Call) -> None:
        self.calls.pop(call.id, None)
        self._unindex(call)
        self._ended[call.id] = call.status
        while len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)

    def drop(self, call: Call) -> None:
        """Forget a call without a status line (never queued, PBX no longer has it)."""
        self._forget(call)
        self._tracker.call(call, False)
        self._tracker.stats_dirty()

    def restore(self, calls: Iterable[Call]) -> None:
        self.calls.clear()
        self.by_queue.clear()
        self.waiting.clear()
        for call in calls:
            if call.status in (HANGUP, ABANDON):
                continue
            self.calls[call.id] = call
            if call.queue:
                self.by_queue.setdefault(call.queue, set()).add(call.id)
            if call.status == QUEUED and not call.left:
                self.waiting.setdefault(call.queue, {})[call.id] = call.entered or call.since
            else:
                call.position = 0
        for queue, waiting in self.waiting.items():
            # In arrival order, as app_queue keeps them (no priorities).
            ordered = sorted(waiting.items(), key=lambda kv: kv[1])
            self.waiting[queue] = dict(ordered)
            for place, (uid, _entered) in enumerate(ordered, 1):
                self.calls[uid].position = place

    def incall(self) -> list[Call]:
        return [c for c in self.calls.values() if c.status == INCALL]
