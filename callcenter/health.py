"""Link health: is the PBX (AMI) session up and reconciled, is Redis writable.

``Health`` is the one owner of that state.  It is fed through small public
hooks — ``follow_pbx`` wires it to the AMI client's problem/connect/
disconnect hooks and ``Callcenter.when_reconciled``; ``follow_store`` to the
Redis store's state hook — and tells its subscribers (the dashboards'
fan-out, the systemd notifier) on every change.  It knows nothing of either
side's internals.

``since`` is when the link last went up or down (unix seconds); ``error``
is a short reason from a fixed vocabulary (``PBX_REASONS``), never a host
name, an address or a password, because ``/readyz`` shows it unauthenticated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.error import (
    ConnectError,
    ConnectingCancelledError,
    ConnectionRefusedError,
    DNSLookupError,
    NoRouteError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

__all__ = [
    "Health",
    "LinkState",
    "follow_pbx",
    "follow_store",
    "pbx_reason",
]

# What the PBX link's ``error`` can say (docs/operations.md).
NOT_CONNECTED = "not connected yet"
REFUSED = "connection refused"
TIMED_OUT = "connection timed out"
HOST_NOT_FOUND = "host not found"
UNREACHABLE = "network unreachable"
CANNOT_CONNECT = "cannot connect"
LOGIN_FAILED = "login failed"
NO_ANSWER = "no answer from the PBX"
CLOSED_BEFORE_LOGIN = "connection closed before login"
LOST = "connection lost"
STOPPED = "service stopping"
PBX_REASONS = (NOT_CONNECTED, REFUSED, TIMED_OUT, HOST_NOT_FOUND, UNREACHABLE, CANNOT_CONNECT,
               LOGIN_FAILED, NO_ANSWER, CLOSED_BEFORE_LOGIN, LOST, STOPPED)

STORE_NOT_CONNECTED = "not connected yet"
MAX_ERROR = 120  # characters of a store error kept (Redis's own messages are short)


def pbx_reason(kind: str, failure: Failure | None = None) -> str:
    """A failure while reaching the PBX → one of ``PBX_REASONS``."""
    if kind == "login":
        return LOGIN_FAILED
    if kind == "timeout":
        return NO_ANSWER
    if kind == "closed":
        return CLOSED_BEFORE_LOGIN
    if failure is not None:
        if failure.check(ConnectionRefusedError):
            return REFUSED
        if failure.check(TCPTimedOutError, TimeoutError, ConnectingCancelledError):
            return TIMED_OUT
        if failure.check(DNSLookupError):
            return HOST_NOT_FOUND
        if failure.check(NoRouteError):
            return UNREACHABLE
        if failure.check(ConnectError):
            return CANNOT_CONNECT
    return CANNOT_CONNECT


@dataclass
class LinkState:
    up: bool
    since: float
    error: str
    synced: bool = False  # PBX only: reconciled since the last login


class Health:
    """Both links' state; subscribers get ``fn(health)`` after each change."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        now = clock.seconds()
        self.pbx = LinkState(up=False, since=now, error=NOT_CONNECTED)
        self.store = LinkState(up=False, since=now, error=STORE_NOT_CONNECTED)
        self._subscribers: list[Callable[[Health], None]] = []
        self._login = 0  # counts logins, so a reconcile of an older session is not taken

    def subscribe(self, fn: Callable[[Health], None]) -> Callable[[], None]:
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    # -- views ----------------------------------------------------------------

    @property
    def pbx_ready(self) -> bool:
        return self.pbx.up and self.pbx.synced

    def to_json(self) -> dict[str, Any]:
        """The dashboards' HEALTH object (docs/protocol.md)."""
        p, s = self.pbx, self.store
        return {
            "type": "HEALTH",
            "pbx": {"up": p.up, "synced": p.synced, "since": int(p.since), "error": p.error},
            "store": {"up": s.up, "since": int(s.since), "error": s.error},
        }

    def pbx_problem(self) -> str:
        """Why the PBX link is not ready ("" when it is)."""
        if not self.pbx.up:
            return self.pbx.error or CANNOT_CONNECT
        if not self.pbx.synced:
            return "logged in, reconciling with the PBX"
        return ""

    # -- PBX ------------------------------------------------------------------

    def pbx_failed(self, reason: str) -> None:
        """A connection attempt or login failed (the link stays down)."""
        self._set_pbx(False, False, reason)

    def pbx_logged_in(self) -> int:
        """Logged in: up, but the state is not the PBX's until reconciled.
        Returns this login's number, for ``pbx_reconciled``."""
        self._login += 1
        self._set_pbx(True, False, "")
        return self._login

    def pbx_reconciled(self, login: int | None = None) -> None:
        """A resync was applied (``login``: the login it was asked for)."""
        if not self.pbx.up or (login is not None and login != self._login):
            return
        self._set_pbx(True, True, "")

    def pbx_lost(self, reason: str = LOST) -> None:
        self._set_pbx(False, False, reason)

    def _set_pbx(self, up: bool, synced: bool, error: str) -> None:
        p = self.pbx
        if (p.up, p.synced, p.error) == (up, synced, error):
            return
        if up != p.up:
            p.since = self.clock.seconds()
        p.up, p.synced, p.error = up, synced, error
        self._changed()

    # -- store ----------------------------------------------------------------

    def store_state(self, up: bool, error: str = "") -> None:
        s = self.store
        error = "" if up else (error or "unavailable")[:MAX_ERROR]
        if (s.up, s.error) == (up, error):
            return
        if up != s.up:
            s.since = self.clock.seconds()
        s.up, s.error = up, error
        self._changed()

    def _changed(self) -> None:
        for fn in list(self._subscribers):
            try:
                fn(self)
            except Exception:
                log.failure("health subscriber {fn!r} failed", fn=fn)


def follow_pbx(health: Health, client: Any, center: Any) -> None:
    """Feed ``health`` from an ``AMIClient`` and the center's reconciles.

    Call it *before* ``center.attach(client)``: connect hooks run in order,
    so the login is noted and the reconcile watched before the resync runs.
    """
    client.add_problem_hook(lambda kind, failure: health.pbx_failed(pbx_reason(kind, failure)))
    client.add_disconnect_hook(health.pbx_lost)

    def logged_in() -> None:
        login = health.pbx_logged_in()
        d: defer.Deferred = center.when_reconciled()
        d.addCallback(lambda _: health.pbx_reconciled(login))

    client.add_connect_hook(logged_in)


def follow_store(health: Health, store: Any) -> None:
    """Feed ``health`` from a ``RedisStore``'s state hook (up: writing per event)."""
    store.add_state_hook(health.store_state)
