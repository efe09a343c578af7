"""Resync: ask the PBX for the truth, one request at a time, by construction.

A resync runs after every AMI login and when an event shows we missed
something.  It has two modes, ``IDLE`` and ``RUNNING``; a request while
running only marks ``again``, so the running one is followed by exactly one
more and two never share the "changed during the snapshot" set.  Each list
action is bounded in time: one that does not complete is given up, the AMI
connection is dropped, and the next login starts over.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from callcenter import gcpause
from callcenter.ami.events import PbxSnapshot, pbx_snapshot
from callcenter.ami.message import Message

log = Logger()

#: Seconds a QueueStatus / CoreShowChannels answer may take to complete.
LIST_TIMEOUT = 30.0


class ActionSender(Protocol):
    def action(self, name: str, **headers: str) -> defer.Deferred: ...

    def list_action(self, name: str, **headers: str) -> defer.Deferred: ...

    def drop_connection(self) -> None: ...


class Mode(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"


class Resync:
    def __init__(
        self,
        clock: IReactorTime,
        apply: Callable[[PbxSnapshot, set[str]], defer.Deferred | None],
        start_tracking: Callable[[], set[str]],
        stop_tracking: Callable[[], None],
        list_timeout: float = LIST_TIMEOUT,
    ) -> None:
        self.clock = clock
        self.ami: Any = None
        self._apply = apply
        self._start_tracking = start_tracking
        self._stop_tracking = stop_tracking
        self.list_timeout = list_timeout
        self.mode = Mode.IDLE
        self._again = False
        self._done: list[defer.Deferred[None]] = []
        self.completed = 0  # resyncs applied, for health and tests
        self._watchers: list[defer.Deferred[None]] = []

    def when_applied(self) -> defer.Deferred[None]:
        """Fires once the next resync's snapshot has been applied."""
        d: defer.Deferred[None] = defer.Deferred()
        self._watchers.append(d)
        return d

    def request(self) -> defer.Deferred[None]:
        """Resync now, or once more after the one running; fires when state
        reflects a snapshot taken after this request."""
        d: defer.Deferred[None] = defer.Deferred()
        self._done.append(d)
        if self.mode is Mode.RUNNING:
            self._again = True
        else:
            self.mode = Mode.RUNNING
            defer.ensureDeferred(self._run())
        return d

    async def _run(self) -> None:
        try:
            while True:
                self._again = False
                waiting, self._done = self._done, []
                try:
                    await self._once()
                except Exception as e:
                    log.warn("resync with the PBX failed: {err}", err=e)
                for d in waiting:
                    d.callback(None)
                if not self._again:
                    break
        finally:
            self.mode = Mode.IDLE

    async def _list(self, name: str) -> list[Message]:
        d = defer.maybeDeferred(self.ami.list_action, name)
        d.addTimeout(self.list_timeout, self.clock)
        try:
            answer = await d
        except defer.TimeoutError:
            log.warn(
                "{name} did not complete within {t:g} s; dropping the AMI connection",
                name=name,
                t=self.list_timeout,
            )
            self.ami.drop_connection()
            raise
        return list(answer)[1:]

    async def _once(self) -> None:
        if self.ami is None:
            return
        touched = self._start_tracking()
        try:
            # Both asked at once: Asterisk answers a session's actions one after
            # the other, so the snapshots are as if asked in turn, and the
            # second answer is on its way while the first one is read.
            shown = defer.ensureDeferred(self._list("CoreShowChannels"))
            status = defer.ensureDeferred(self._list("QueueStatus"))
            channels: list[Message] | None
            try:
                channels = await shown
            except defer.TimeoutError:
                status.addErrback(lambda _: None)
                status.cancel()  # the connection is being dropped: one drop, one start over
                raise
            except Exception as e:
                log.warn("CoreShowChannels failed ({err}); reconciling without it", err=e)
                channels = None
            items = await status
            # One synchronous step over ~30,000 items for a 10,000-agent centre
            # (callcenter/gcpause.py).  A Deferred when a queue-log catch-up
            # holds it back: wait for it.
            with gcpause.paused():
                applied = defer.maybeDeferred(self._apply, pbx_snapshot(items, channels), touched)
            await applied
            self.completed += 1
            watchers, self._watchers = self._watchers, []
            for d in watchers:
                d.callback(None)
        finally:
            self._stop_tracking()
