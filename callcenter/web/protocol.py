"""The ``/callcenter`` WebSocket: one ``DashboardProtocol`` per supervisor page.

Besides the protocol of DESIGN.md this enforces the limits that keep one bad
client from hurting the others: text frames only, small frames, and a bound
on what the server buffers for a client that stops reading (it is
disconnected instead).  Who may connect, see and command is ``Access``'s
(``callcenter.web.access``): the upgrade needs our Host, our exact Origin
and a login; the user's avatar filters what is sent and vets each command.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet.defer import ensureDeferred, maybeDeferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from callcenter.ami.errors import AMIConnectionLost, AMIError, AMINotConnected
from callcenter.center import NotConnected, UnknownAgent, UnknownReason
from callcenter.logthrottle import LogThrottle
from callcenter.web.access import CLOSE_SESSION_ENDED, NOT_ALLOWED, Access
from callcenter.web.commands import Avail, BadCommand, Hello, Pause, parse_command
from callcenter.web.fanout import Dashboards, encode
from callcenter.web.limits import WebLimits, real_transport
from callcenter.web.sendnow import DirectWriter

log = Logger(namespace="callcenter.web")

# Dead peers (laptop lid closed, network gone) are noticed by WebSocket pings.
AUTO_PING_INTERVAL = 30.0
AUTO_PING_TIMEOUT = 30.0
# Commands a dashboard may send: a burst of COMMAND_BURST, then COMMAND_RATE a
# second (a person clicks far less; a HELLO loop would burn CPU on snapshots).
COMMAND_BURST = 20
COMMAND_RATE = 10.0
# Commands refused before the client is cut off as hostile, counted until it
# has been calm long enough to earn half its burst back: a flood whose frames
# are read in bursts (a busy reactor) lets a token or two refill between them,
# which must not start the count again.
COMMAND_ABUSE = 200


def user_message(error: BaseException) -> str | None:
    """The ERROR text for a failed command meant for the supervisor; None for a bug."""
    if isinstance(error, (UnknownAgent, UnknownReason)):
        return str(error)
    if isinstance(error, AMIError):
        return str(error) or "Asterisk refused the action"  # Asterisk's own Message
    if isinstance(error, (NotConnected, AMINotConnected)):
        return "not connected to Asterisk"
    if isinstance(error, AMIConnectionLost):
        return "connection to Asterisk lost before it answered; try again"
    return None


@implementer(IPushProducer)
class _OutputGuard:
    """Registered as the transport's producer to learn when its buffer is full.

    Twisted pauses the producer once more than ``bufferSize`` (64 KiB) is
    waiting for the socket and resumes it only when the buffer is empty
    again, so the bytes written while paused are what piles up in memory.
    This works the same over TCP and TLS, without peeking at transport
    internals.
    """

    def __init__(self) -> None:
        self.paused = False
        self.pending = 0

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.pending = 0

    def stopProducing(self) -> None:
        pass


class DashboardProtocol(WebSocketServerProtocol):
    factory: DashboardFactory

    def __init__(self) -> None:
        super().__init__()
        self._guard = _OutputGuard()
        self._dropped = False
        self._tokens = float(COMMAND_BURST)
        self._tokens_at: float | None = None
        self._refused = 0
        self.user: Any = None  # the role avatar, once admitted
        self.gone = False
        self._hello_at: float | None = None
        self._hello_later: Any = None  # a HELLO waiting for the end of the interval
        self._writer: DirectWriter | None = None  # set once the transport is known

    # -- connection life ------------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        # The connection limiter's counting wrapper stays the socket's protocol
        # (it relays the bytes and the close, so the count follows the
        # connection); we write to the real transport, which Autobahn needs
        # to see as TLS for wss://.
        transport = real_transport(transport)
        self._writer = DirectWriter(transport)
        super().makeConnection(transport)

    def connectionMade(self) -> None:
        # Autobahn's own lines (two per refused handshake) go through the
        # site's log throttle too, so a flood of refusals is a few lines.
        self.log = self.factory.autobahn_log
        super().connectionMade()
        # Twisted Web's HTTPChannel is still registered as the producer of the
        # transport WebSocketResource took over from it: replace it by ours.
        self.transport.unregisterProducer()
        self.transport.registerProducer(self._guard, True)

    def onConnect(self, request: Any) -> Any:
        async def admit() -> None:
            self.user = (await self.factory.access.admit(self, request)).user

        return ensureDeferred(admit())

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.gone = True
        if self._hello_later is not None and self._hello_later.active():
            self._hello_later.cancel()
        self._hello_later = None
        self.factory.dashboards.discard(self)
        self.factory.access.forget(self)

    # -- incoming -------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            # sendClose() only takes application codes; 1003 is the protocol's own.
            self.sendCloseFrame(
                WebSocketProtocol.CLOSE_STATUS_CODE_UNSUPPORTED_DATA, b"text frames only"
            )
            return
        if not self._may_command():
            return
        try:
            command = parse_command(payload.decode("utf-8"))
        except BadCommand as e:
            self.send_error(str(e))
            return
        center = self.factory.center
        match command:
            case Hello():
                self._hello()
            case Pause(agentid, reason):
                self._command("PAUSE", agentid, reason, center.pause, agentid, reason)
            case Avail(agentid):
                self._command("AVAIL", agentid, "", center.unpause, agentid)

    def _hello(self) -> None:
        """One snapshot per ``hello_interval`` per connection: a HELLO sooner
        than that is answered when the interval is over, and further ones in
        the meantime share that answer, so a HELLO loop cannot make us build
        (or send) more than one snapshot per interval."""
        if self._hello_later is not None:
            return  # coalesced with the one already waiting
        now = self.factory.reactor.seconds()
        wait = self.factory.limits.hello_interval - (now - self._hello_at) if self._hello_at is not None else 0
        if wait > 0:
            self._hello_later = self.factory.reactor.callLater(wait, self._hello_due)
            return
        self._hello_at = now
        self.factory.dashboards.hello(self)

    def _hello_due(self) -> None:
        self._hello_later = None
        if self.state == WebSocketProtocol.STATE_OPEN:
            self._hello()

    def _may_command(self) -> bool:
        """Token bucket per dashboard; refusals are answered once per run."""
        now = self.factory.reactor.seconds()
        if self._tokens_at is not None:
            self._tokens = min(COMMAND_BURST, self._tokens + (now - self._tokens_at) * COMMAND_RATE)
        self._tokens_at = now
        if self._tokens >= 1:
            if self._tokens >= COMMAND_BURST / 2:
                self._refused = 0  # calm again: a new run of refusals is told anew
            self._tokens -= 1
            return True
        self._refused += 1
        if self._refused == 1:
            self.send_error(f"too many commands: at most {COMMAND_RATE:g} a second")
        elif self._refused == COMMAND_ABUSE:
            self.factory.throttle.warn(
                "web.rate", "dashboard {peer} cut off: {n} commands over the rate", peer=self.peer, n=self._refused)
            self.sendCloseFrame(WebSocketProtocol.CLOSE_STATUS_CODE_POLICY_VIOLATION, b"too many commands")
        return False

    def _command(self, action: str, agentid: str, reason: str, fn: Any, *args: Any) -> None:
        queues = self.factory.dashboards.directory.agent_queues(agentid)
        d = self.factory.access.command(
            self, action, agentid, reason, queues, lambda: maybeDeferred(fn, *args)
        )
        if d is None:
            self.send_error(NOT_ALLOWED)  # and nothing was done
        else:
            d.addErrback(self._command_failed)

    def _command_failed(self, failure: Failure) -> None:
        message = user_message(failure.value)
        if message is None:
            log.failure("dashboard command failed", failure)
            message = "internal error"
        self.send_error(message)

    # -- outgoing -------------------------------------------------------

    def send_error(self, message: str) -> None:
        self.send_payload(encode([{"type": "ERROR", "message": message}]))

    def send_payload(self, payload: bytes) -> None:
        if self.state == WebSocketProtocol.STATE_OPEN:
            # Not sendMessage: Autobahn applies maxMessagePayloadSize (our limit on
            # what clients send) to outgoing messages too, which would refuse any
            # HELLO snapshot over 4 KiB, i.e. every real call center's.
            self.sendPreparedMessage(self.factory.prepareMessage(payload, isBinary=False))

    def send_prepared(self, prepared: Any) -> None:
        if self.state == WebSocketProtocol.STATE_OPEN:
            frame = autobahn_prepared_frame(self, prepared)
            if frame is None or self._dropped or self._guard.paused or self._writer is None:
                self.sendPreparedMessage(prepared)  # through sendData below
            else:
                # sendData's common case without its calls: this runs once per
                # frame and dashboard, hundreds of times for one change.
                self._writer.write(frame)

    def session_ended(self) -> None:
        """Logged out, expired or revoked: the page reloads and meets the login."""
        self.factory.dashboards.discard(self)
        if self.state == WebSocketProtocol.STATE_OPEN:
            self.sendClose(CLOSE_SESSION_ENDED, "session ended")
        elif self.transport is not None:
            self.transport.loseConnection()

    def going_away(self) -> None:
        if self.state == WebSocketProtocol.STATE_OPEN:
            self.sendCloseFrame(WebSocketProtocol.CLOSE_STATUS_CODE_GOING_AWAY, b"server stopping")

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        # Every byte Autobahn sends passes here: count what arrives while the
        # transport's buffer is full and drop the client past the limit.
        if self._dropped:
            return
        guard = self._guard
        if guard.paused:
            guard.pending += len(data)
            if guard.pending > self.factory.max_buffer:
                self._drop(guard.pending)
                return
        if sync or chopsize or autobahn_has_queued(self) or self._writer is None:
            super().sendData(data, sync, chopsize)
        else:
            # Autobahn's own path formats a debug log record on every call,
            # which is most of the fan-out's cost with hundreds of dashboards;
            # and Twisted's write waits for the next turn with two epoll_ctl
            # per socket (sendnow.py): straight to the socket when we can.
            self._writer.write(data)

    def _drop(self, pending: int) -> None:
        self._dropped = True
        self.factory.throttle.warn(
            "web.slow-reader",
            "dashboard {peer} dropped: not reading, {pending} bytes over the full "
            "send buffer (limit {limit})",
            peer=self.peer,
            pending=pending,
            limit=self.factory.max_buffer,
        )
        self.factory.dashboards.discard(self)
        self.factory.dashboards.dropped_slow += 1
        # abort, not lose: a clean close would wait for the peer to read.
        self.transport.abortConnection()


class ThrottledTxaioLog:
    """Stands in for Autobahn's txaio logger on our protocols.

    Debug and trace lines are dropped (as twistd's default level would);
    the rest go through the site's ``LogThrottle``, keyed by their format
    string (constant text in Autobahn's source, never the peer's data).
    """

    def __init__(self, throttle: LogThrottle) -> None:
        self._throttle = throttle

    def _emit(self, level: LogLevel, fmt: str, /, **fields: Any) -> None:
        fields.pop("log_failure", None)
        self._throttle.emit(level, "web.autobahn:" + fmt, "autobahn: " + fmt, **fields)

    def info(self, fmt: str, /, **fields: Any) -> None:
        self._emit(LogLevel.info, fmt, **fields)

    def warn(self, fmt: str, /, **fields: Any) -> None:
        self._emit(LogLevel.warn, fmt, **fields)

    def error(self, fmt: str, /, **fields: Any) -> None:
        self._emit(LogLevel.error, fmt, **fields)

    critical = error

    def failure(self, fmt: str | None = None, failure: Any = None, **fields: Any) -> None:
        self._emit(LogLevel.error, fmt or "unhandled error", **fields)

    def debug(self, fmt: str = "", **fields: Any) -> None:
        pass

    trace = debug


def autobahn_has_queued(proto: WebSocketServerProtocol) -> bool:
    """Adapter for Autobahn's ``send_queue`` (no public API says "bytes queued").

    Autobahn queues data in ``send_queue`` only for its ``sync``/``chopsize``
    sends; our fast path writes to the transport directly and must not
    overtake such queued bytes.  ``tests/web/test_limits.py`` fails if the
    attribute disappears or changes type, so an Autobahn upgrade cannot
    silently reorder frames.
    """
    return bool(proto.send_queue)


def autobahn_prepared_frame(proto: WebSocketServerProtocol, prepared: Any) -> bytes | None:
    """The bytes ``proto.sendPreparedMessage(prepared)`` would pass to
    ``sendData``, when nothing waits in Autobahn's ``send_queue``; else None.

    Adapter for Autobahn's ``PreparedMessage.payloadHybi`` (the framed
    message) and ``_perMessageCompress`` (set when the client negotiated
    compression, which our factory never offers): ``sendPreparedMessage`` is
    the public way, one call deeper per frame and dashboard.
    ``tests/web/test_sendnow.py`` fails if this stops matching the library.
    """
    if proto.send_queue or (proto._perMessageCompress is not None and not prepared.doNotCompress):
        return None
    return prepared.payloadHybi


class DashboardFactory(WebSocketServerFactory):
    protocol = DashboardProtocol

    def __init__(
        self,
        center: Any,
        *,
        reactor: Any,
        access: Access,
        max_buffer: int,
        max_frame: int,
        limits: WebLimits | None = None,
        decorate: Any = None,
        config: dict[str, Any] | None = None,
        health: Any = None,
    ) -> None:
        super().__init__(reactor=reactor, server="callcenter")
        self.limits = limits or WebLimits()
        self.throttle = self.limits.log(reactor)
        self.autobahn_log = ThrottledTxaioLog(self.throttle)
        self.center = center
        self.access = access
        self.max_buffer = max_buffer
        self.setProtocolOptions(
            versions=[13],
            maxFramePayloadSize=max_frame,
            maxMessagePayloadSize=max_frame,
            autoPingInterval=AUTO_PING_INTERVAL,
            autoPingTimeout=AUTO_PING_TIMEOUT,
            # Tell a client why it is refused (1009 too big...) before closing;
            # closeHandshakeTimeout still drops one that does not answer.
            failByDrop=False,
            webStatus=False,  # a plain GET gets an error, not a status page
            # Host and Origin are checked in onConnect (Access.admit) against --public-url.
            allowedOrigins=["*"],
        )
        self.dashboards = Dashboards(
            center, self.prepareMessage, reactor, decorate=decorate, config=config, health=health,
            stats_interval=self.limits.stats_interval,
        )
