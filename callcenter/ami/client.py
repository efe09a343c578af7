"""The service's AMI client: one logged-in connection, kept alive and reconnected.

Reconnection is ``twisted.application.internet.ClientService``'s job; this
module adds what AMI needs on top: login (and a slow retry when the login is
rejected), a keepalive ``Ping``, listeners by event name, hooks run after
every login (where the service re-reads the queues' truth; again when a PBX
that was still booting says ``FullyBooted``) and quiet logs: one clear line
per state change, not one per retry.

Login is done from the protocol's ``connectionMade`` rather than through
ClientService's ``prepareConnection``: with Twisted 26.10 a connection that
drops while ``prepareConnection`` is pending (or after it failed) raises
``automat.NoTransition`` out of ``connectionLost``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from twisted.application.internet import backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    TimeoutError,
    fail,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IProtocolFactory, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from callcenter.ami.errors import AMIConnectionLost, AMIError, AMINotConnected
from callcenter.ami.message import Message
from callcenter.ami.protocol import AMIProtocol
from callcenter.ami.twisted_internals import QuietClientService, describe_endpoint
from callcenter.logthrottle import LogThrottle

__all__ = ["ALL_EVENTS", "AMIClient", "describe_endpoint"]

log = Logger()

ALL_EVENTS = "*"

Listener = Callable[[Message], object]
Hook = Callable[[], object]
#: ``fn(kind, failure)`` when reaching the PBX fails; kind is "connect" (TCP),
#: "login" (rejected), "timeout" (no answer to Login/Ping) or "closed" (dropped
#: before login completed).
ProblemHook = Callable[[str, Failure | None], object]


def _callable_name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


@implementer(IStreamClientEndpoint)
class _WatchedEndpoint:
    """Tells the client about failed connection attempts, which ClientService keeps to itself."""

    def __init__(self, endpoint: IStreamClientEndpoint, failed: Callable[[Failure], None]) -> None:
        self._endpoint = endpoint
        self._failed = failed

    def connect(self, factory: IProtocolFactory) -> Deferred:
        def failed(f: Failure) -> Failure:
            self._failed(f)
            return f

        return self._endpoint.connect(factory).addErrback(failed)


class _Factory(Factory):
    noisy = False  # no "Starting factory" line per connection

    def __init__(self, client: AMIClient) -> None:
        self.client = client

    def buildProtocol(self, addr: object) -> AMIProtocol:
        c = self.client
        proto = AMIProtocol(
            c._dispatch,
            wanted=c._wanted(),
            clock=c._reactor,
            on_connection_made=c._connection_made,
            on_connection_lost=c._connection_lost,
        )
        proto.factory = self
        return proto


class AMIClient(Service):
    """A kept-alive, logged-in AMI connection.

    ``action``/``list_action`` go to the current connection and fail at once
    with ``AMINotConnected`` between connections.  Listeners get events by
    name (``"*"``: every event); connect hooks run after every successful
    login (once the session has answered its first action, a ``Ping``), and
    again if that PBX was still booting and sends ``FullyBooted`` later;
    disconnect hooks run when that connection is lost.

    Reconnecting backs off ``retry_initial`` × 2ⁿ up to ``retry_max``
    seconds (plus ``jitter()``, capped too) and resets once a connection has
    answered a keepalive ``Ping``; after a rejected login it waits at least
    ``auth_retry`` seconds.  No answer to ``Login`` or ``Ping`` within
    ``ping_timeout`` seconds aborts the connection.  ``ping_interval <= 0``
    disables the keepalive.

    ``events`` is sent as Login's ``Events`` header when given (e.g.
    ``"agent,call,user,system"`` to have Asterisk drop the dialplan chatter
    at the source); ``description`` names the endpoint in logs (default: its
    host:port); ``jitter()`` gives the random seconds added to each backoff
    delay (default: up to retry_initial / 2).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        endpoint: IStreamClientEndpoint,
        username: str,
        secret: str,
        *,
        md5: bool = False,
        ping_interval: float = 20.0,
        ping_timeout: float = 10.0,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        auth_retry: float = 60.0,
        events: str | None = None,
        description: str | None = None,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self._reactor = reactor
        self._username = username
        self._secret = secret
        self._md5 = md5
        self._events = events
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._retry_max = retry_max
        self._auth_retry = auth_retry
        self.endpoint_description = description or describe_endpoint(endpoint)
        if jitter is None:
            def jitter() -> float:
                return random.random() * retry_initial / 2
        self._backoff = backoffPolicy(
            initialDelay=retry_initial, maxDelay=retry_max, factor=2, jitter=jitter
        )
        self._service = QuietClientService(
            _WatchedEndpoint(endpoint, self._connect_failed),
            _Factory(self),
            retryPolicy=self._retry_delay,
            clock=reactor,
        )
        self._listeners: dict[str, tuple[Listener, ...]] = {}
        self._connect_hooks: list[Hook] = []
        self._disconnect_hooks: list[Hook] = []
        self._problem_hooks: list[ProblemHook] = []
        self._waiters: list[Deferred[None]] = []
        self._throttle = LogThrottle(log, reactor)
        self._current: AMIProtocol | None = None  # connected, maybe not logged in
        self._proto: AMIProtocol | None = None  # logged in and ready
        self._ping_loop: LoopingCall | None = None
        self._ping_pending: Deferred | None = None
        self._hooks_busy: AMIProtocol | None = None  # the connection whose connect hooks run
        self._hooks_again = False  # another round was asked for meanwhile
        self._failures = 0  # consecutive attempts that did not give a healthy connection
        self._connect_failures = 0
        self._trouble_key: str | None = None  # the connection problem last reported
        self._trouble_count = 0
        self._reported: AMIProtocol | None = None  # its login failure is logged already
        self._auth_rejected = False
        self._auth_message: str | None = None
        self._stopping = False
        self._reading_paused = False  # pause_reading: the downstream (Redis) is full
        #: Delays (seconds) returned to ClientService, newest last; for tests and debugging.
        self.retry_delays: deque[float] = deque(maxlen=100)

    # -- public API --------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while logged in (and the connect hooks may use ``action``)."""
        return self._proto is not None and self._proto.connected

    def whenConnected(self) -> Deferred[None]:
        """Fires (with None) once logged in: now if already so, else at the next login.
        Fails with ``CancelledError`` if the service stops first."""
        if self.connected:
            return succeed(None)

        def cancel(d: Deferred[None]) -> None:
            if d in self._waiters:
                self._waiters.remove(d)

        d: Deferred[None] = Deferred(cancel)
        self._waiters.append(d)
        return d

    def action(
        self,
        name: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        **kw: str,
    ) -> Deferred[Message]:
        proto = self._proto
        if proto is None or not proto.connected:
            return fail(AMINotConnected(f"not logged in to AMI at {self.endpoint_description}; {name} not sent"))
        return proto.action(name, headers, **kw)

    def list_action(
        self,
        name: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        **kw: str,
    ) -> Deferred[list[Message]]:
        proto = self._proto
        if proto is None or not proto.connected:
            return fail(AMINotConnected(f"not logged in to AMI at {self.endpoint_description}; {name} not sent"))
        return proto.list_action(name, headers, **kw)

    def drop_connection(self) -> None:
        """Abort the current AMI connection (e.g. a list answer that never
        completes); the client reconnects and logs in again as after any drop."""
        proto = self._proto
        if proto is not None and proto.connected:
            proto.abort()

    @property
    def reading_paused(self) -> bool:
        return self._reading_paused

    def pause_reading(self) -> None:
        """Stop reading from the PBX (what it sends waits in the socket, then
        at the PBX) until ``resume_reading``: backpressure from a full
        downstream.  The keep-alive does not count this as a dead link."""
        if not self._reading_paused:
            self._reading_paused = True
            if self._proto is not None and self._proto.transport is not None:
                self._proto.transport.pauseProducing()

    def resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            if self._proto is not None and self._proto.transport is not None:
                self._proto.transport.resumeProducing()

    def add_listener(self, event_name: str, fn: Listener) -> None:
        """Call ``fn(msg)`` for every event ``event_name`` (``"*"``: every event)."""
        self._listeners[event_name] = (*self._listeners.get(event_name, ()), fn)
        self._update_wanted()

    def remove_listener(self, event_name: str, fn: Listener) -> None:
        """Undo one ``add_listener``; no error if it was not there."""
        fns = list(self._listeners.get(event_name, ()))
        if fn in fns:
            fns.remove(fn)
            if fns:
                self._listeners[event_name] = tuple(fns)
            else:
                del self._listeners[event_name]
            self._update_wanted()

    def add_connect_hook(self, fn: Hook) -> None:
        """``fn()`` (may return a Deferred) after every successful login; hooks
        run one after another, in the order added.  Failures are logged."""
        self._connect_hooks.append(fn)

    def add_disconnect_hook(self, fn: Hook) -> None:
        """``fn()`` when a logged-in connection is lost (or closed by stopService)."""
        self._disconnect_hooks.append(fn)

    def add_problem_hook(self, fn: ProblemHook) -> None:
        """``fn(kind, failure)`` each time an attempt to reach the PBX fails
        (see ``ProblemHook``): for health reporting, not for retrying."""
        self._problem_hooks.append(fn)

    def _problem(self, kind: str, failure: Failure | None) -> None:
        for fn in list(self._problem_hooks):
            try:
                fn(kind, failure)
            except Exception:
                log.failure("AMI problem hook {hook} failed", hook=_callable_name(fn))

    def startService(self) -> None:
        self._stopping = False
        super().startService()
        self._service.startService()

    def stopService(self) -> Deferred[None]:
        self._stopping = True
        super().stopService()
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(Failure(CancelledError("AMI client stopped")))
        return self._service.stopService()

    # -- listeners ---------------------------------------------------------

    def _wanted(self) -> frozenset[str] | None:
        return None if ALL_EVENTS in self._listeners else frozenset(self._listeners)

    def _update_wanted(self) -> None:
        if self._current is not None:
            self._current.wanted = self._wanted()

    def _dispatch(self, msg: Message) -> None:
        name = msg.name
        listeners = self._listeners
        fns = listeners.get(name, ())
        if ALL_EVENTS in listeners:
            fns = fns + listeners[ALL_EVENTS]
        for fn in fns:
            try:
                result = fn(msg)
            except Exception:
                self._throttle.failure(
                    f"listener:{id(fn)}:{name}",
                    "AMI listener {listener} failed on event {event}",
                    listener=_callable_name(fn), event=name)
            else:
                if isinstance(result, Deferred):
                    result.addErrback(self._listener_failed, fn, name)

    def _listener_failed(self, f: Failure, fn: Listener, name: str) -> None:
        if self._throttle.allow(f"listener:{id(fn)}:{name}") is not None:
            log.failure(
                "AMI listener {listener} failed on event {event}", f, LogLevel.error,
                listener=_callable_name(fn), event=name)

    # -- connection life ---------------------------------------------------

    def _retry_delay(self, attempt: int) -> float:
        # ClientService's own count restarts at every TCP connect, so a server
        # that accepts and then drops us would be retried at the initial delay
        # forever: count ourselves, and reset only on a proven-healthy connection.
        self._failures += 1
        delay = min(self._backoff(self._failures - 1), self._retry_max)
        if self._auth_rejected:
            delay = max(delay, self._auth_retry)
        self.retry_delays.append(delay)
        return delay

    def _trouble(self, key: str, fmt: str, **fields: object) -> None:
        """Log a recurring connection problem sparingly: its first time, when
        it changes, then every 10th time in a row."""
        if key != self._trouble_key:
            self._trouble_key = key
            self._trouble_count = 0
        self._trouble_count += 1
        n = self._trouble_count
        if n == 1:
            log.warn(fmt + "; retrying (every {retry_max:g} s at most)", retry_max=self._retry_max, **fields)
        elif n % 10 == 0:
            log.warn(fmt + " ({n} times in a row)", n=n, **fields)

    def _connect_failed(self, f: Failure) -> None:
        if f.check(CancelledError) or self._stopping:
            return
        self._connect_failures += 1
        self._problem("connect", f)
        why = f.getErrorMessage()
        self._trouble(
            f"connect:{why}", "Cannot connect to AMI at {endpoint}: {why}",
            endpoint=self.endpoint_description, why=why)

    def _connection_made(self, proto: AMIProtocol) -> None:
        self._current = proto
        if self._connect_failures:
            log.info(
                "AMI at {endpoint} reachable again after {n} failed attempt(s)",
                endpoint=self.endpoint_description, n=self._connect_failures)
            self._connect_failures = 0
        d = proto.login(self._username, self._secret, md5=self._md5, events=self._events)
        d.addTimeout(self._ping_timeout, self._reactor)
        d.addCallbacks(self._logged_in, self._login_failed, (proto,), None, (proto,))

    def _logged_in(self, _resp: Message, proto: AMIProtocol) -> None:
        if proto is not self._current:
            return
        if self._auth_rejected:
            log.info("AMI login as {user} accepted again", user=self._username)
        self._auth_rejected = False
        self._auth_message = None
        # Ready once the session answers its first action.  No waiting for
        # FullyBooted: Asterisk sends it after Login only to sessions that may
        # read "system" (manager.c action_login), which the shipped
        # manager.conf user may not.  Asterisk writes that FullyBooted before
        # it reads our next action, so when the Ping answer comes we know
        # whether it was sent; a later one means the PBX was still booting.
        d = proto.action("Ping")
        d.addTimeout(self._ping_timeout, self._reactor)
        d.addCallbacks(self._answered_first, self._first_failed, (proto,), None, (proto,))

    def _answered_first(self, _resp: Message | None, proto: AMIProtocol) -> None:
        self._ready(proto)
        if proto is self._proto and not proto.fully_booted:
            proto.when_booted().addCallbacks(
                self._booted_late, lambda f: None if f.check(AMIConnectionLost, CancelledError) else f,
                (proto,)).addErrback(lambda f: log.failure("AMI boot notice failed", f))

    def _first_failed(self, f: Failure, proto: AMIProtocol) -> None:
        if proto is not self._current or f.check(AMIConnectionLost):
            return
        if f.check(AMIError):  # an answer all the same: the session works
            self._answered_first(f.value.response, proto)
            return
        self._give_up(f, proto, "Ping after login")

    def _booted_late(self, _: None, proto: AMIProtocol) -> None:
        if proto is not self._proto or not proto.connected:
            return
        log.info(
            "AMI at {endpoint} finished booting (FullyBooted); running the connect hooks again",
            endpoint=self.endpoint_description)
        self._connect_hooks_for(proto)

    def _login_failed(self, f: Failure, proto: AMIProtocol) -> None:
        if proto is not self._current or f.check(AMIConnectionLost):
            return  # the connection-lost path reports it
        if f.check(AMIError):
            self._problem("login", f)
            message = str(f.value)
            if not self._auth_rejected or message != self._auth_message:
                log.error(
                    "AMI login as {user} rejected: {message} (retrying every {retry:g} s)",
                    user=self._username, message=message, retry=self._auth_retry)
            self._auth_rejected = True
            self._auth_message = message
            self._reported = proto
            proto.abort()
        else:
            self._give_up(f, proto, "Login")

    def _give_up(self, f: Failure, proto: AMIProtocol, what: str) -> None:
        """No (usable) answer to ``what`` while logging in: say so, drop the connection."""
        self._problem("timeout", f)
        if f.check(TimeoutError):
            self._trouble(
                f"timeout:{what}", "No answer to {what} from AMI at {endpoint} within {timeout:g} s",
                what=what, endpoint=self.endpoint_description, timeout=self._ping_timeout)
        else:
            log.failure("AMI {what} to {endpoint} failed", f, what=what, endpoint=self.endpoint_description)
        self._reported = proto
        proto.abort()

    def _ready(self, proto: AMIProtocol) -> None:
        if proto is not self._current or not proto.connected:
            return
        self._proto = proto
        self._trouble_key = None
        if self._reading_paused and proto.transport is not None:
            proto.transport.pauseProducing()  # logged in; events wait for the downstream
        log.info(
            "AMI logged in to {endpoint} as {user} ({banner})",
            endpoint=self.endpoint_description, user=self._username, banner=proto.banner or "no banner")
        self._start_keepalive(proto)
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.callback(None)
        self._connect_hooks_for(proto)

    def _connect_hooks_for(self, proto: AMIProtocol) -> None:
        """Run the connect hooks for this connection, one round at a time: a
        round asked for while one runs starts when that one ends."""
        if self._hooks_busy is proto:
            self._hooks_again = True
            return
        self._hooks_busy, self._hooks_again = proto, False

        def done(_: object) -> None:
            if self._hooks_busy is proto:
                self._hooks_busy = None
                if self._hooks_again and proto is self._proto:
                    self._connect_hooks_for(proto)

        self._run_hooks(self._connect_hooks, "connect", proto).addBoth(done)

    def _connection_lost(self, proto: AMIProtocol, reason: Failure) -> None:
        if proto is self._current:
            self._current = None
        if proto is not self._proto:
            if proto is not self._reported and not self._stopping:
                self._problem("closed", reason)
                why = reason.getErrorMessage()
                self._trouble(
                    f"drop:{why}", "AMI at {endpoint} closed the connection before login completed: {why}",
                    endpoint=self.endpoint_description, why=why)
            return
        self._proto = None
        self._stop_keepalive()
        if not self._stopping:
            log.warn(
                "AMI connection to {endpoint} lost ({why}); reconnecting",
                endpoint=self.endpoint_description, why=reason.getErrorMessage())
        self._run_hooks(self._disconnect_hooks, "disconnect", None)

    def _run_hooks(self, hooks: list[Hook], what: str, proto: AMIProtocol | None) -> Deferred[None]:
        d: Deferred[None] = succeed(None)
        for fn in list(hooks):
            def call(_: object, fn: Hook = fn) -> object:
                if proto is not None and proto is not self._proto:
                    return None  # that connection is gone: the next login runs the hooks again
                return maybeDeferred(fn)

            def failed(f: Failure, fn: Hook = fn) -> None:
                log.failure(
                    "AMI {what} hook {hook} failed", f, LogLevel.error, what=what, hook=_callable_name(fn))

            d.addCallback(call)
            d.addErrback(failed)
        return d

    # -- keepalive ---------------------------------------------------------

    def _start_keepalive(self, proto: AMIProtocol) -> None:
        if self._ping_interval <= 0:
            self._failures = 0
            return
        loop = LoopingCall(self._ping, proto)
        loop.clock = self._reactor
        self._ping_loop = loop
        loop.start(self._ping_interval, now=False).addErrback(
            lambda f: log.failure("AMI keepalive loop failed", f))

    def _stop_keepalive(self) -> None:
        if self._ping_loop is not None and self._ping_loop.running:
            self._ping_loop.stop()
        self._ping_loop = None
        if self._ping_pending is not None:
            pending, self._ping_pending = self._ping_pending, None
            pending.cancel()

    def _ping(self, proto: AMIProtocol) -> None:
        if self._ping_pending is not None or not proto.connected or self._reading_paused:
            return  # not reading: no Pong could be heard
        d = proto.action("Ping")
        self._ping_pending = d
        d.addTimeout(self._ping_timeout, self._reactor)
        received_before = proto.messages_received

        def answered(_: object) -> None:
            self._ping_pending = None
            self._failures = 0  # a healthy connection: the backoff starts over

        def failed(f: Failure) -> None:
            if self._ping_pending is d:
                self._ping_pending = None
            if f.check(TimeoutError) and (proto.messages_received > received_before or self._reading_paused):
                # Busy, not dead: messages kept arriving, and the Pong is queued
                # behind them (seen at ~10,000 events/s).  The next Ping asks again.
                return
            if f.check(TimeoutError):
                log.warn(
                    "AMI keepalive: no answer to Ping from {endpoint} within {timeout:g} s; "
                    "dropping the connection",
                    endpoint=self.endpoint_description, timeout=self._ping_timeout)
                proto.abort()
            elif f.check(AMIError):
                answered(None)  # an answer all the same: the link works
            elif not f.check(AMIConnectionLost, CancelledError):
                log.failure("AMI keepalive failed", f, level=LogLevel.warn)

        d.addCallbacks(answered, failed)
