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
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from callcenter.ami.errors import AMIConnectionLost, AMIError, AMINotConnected
from callcenter.center import NotConnected, UnknownAgent
from callcenter.web.access import CLOSE_SESSION_ENDED, NOT_ALLOWED, Access
from callcenter.web.commands import Avail, BadCommand, Hello, Pause, parse_command
from callcenter.web.fanout import Dashboards, encode

log = Logger(namespace="callcenter.web")

# Dead peers (laptop lid closed, network gone) are noticed by WebSocket pings.
AUTO_PING_INTERVAL = 30.0
AUTO_PING_TIMEOUT = 30.0
# Commands a dashboard may send: a burst of COMMAND_BURST, then COMMAND_RATE a
# second (a person clicks far less; a HELLO loop would burn CPU on snapshots).
COMMAND_BURST = 20
COMMAND_RATE = 10.0
# Commands refused in a row before the client is cut off as hostile.
COMMAND_ABUSE = 200


def user_message(error: BaseException) -> str | None:
    """The ERROR text for a failed command meant for the supervisor; None for a bug."""
    if isinstance(error, UnknownAgent):
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

    # -- connection life ------------------------------------------------

    def connectionMade(self) -> None:
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
                self.factory.dashboards.hello(self)
            case Pause(agentid, reason):
                self._command("PAUSE", agentid, reason, center.pause, agentid, reason)
            case Avail(agentid):
                self._command("AVAIL", agentid, "", center.unpause, agentid)

    def _may_command(self) -> bool:
        """Token bucket per dashboard; refusals are answered once per run."""
        now = self.factory.reactor.seconds()
        if self._tokens_at is not None:
            self._tokens = min(COMMAND_BURST, self._tokens + (now - self._tokens_at) * COMMAND_RATE)
        self._tokens_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            self._refused = 0
            return True
        self._refused += 1
        if self._refused == 1:
            self.send_error(f"too many commands: at most {COMMAND_RATE:g} a second")
        elif self._refused == COMMAND_ABUSE:
            log.warn("dashboard {peer} cut off: {n} commands over the rate", peer=self.peer, n=self._refused)
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
            self.sendPreparedMessage(prepared)

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
        if sync or chopsize or self.send_queue:
            super().sendData(data, sync, chopsize)
        else:
            # Autobahn's own path formats a debug log record on every call,
            # which is most of the fan-out's cost with hundreds of dashboards.
            self.transport.write(data)

    def _drop(self, pending: int) -> None:
        self._dropped = True
        log.warn(
            "dashboard {peer} dropped: not reading, {pending} bytes over the full "
            "send buffer (limit {limit})",
            peer=self.peer,
            pending=pending,
            limit=self.factory.max_buffer,
        )
        self.factory.dashboards.discard(self)
        # abort, not lose: a clean close would wait for the peer to read.
        self.transport.abortConnection()


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
    ) -> None:
        super().__init__(reactor=reactor, server="callcenter")
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
        self.dashboards = Dashboards(center, self.prepareMessage, reactor)
