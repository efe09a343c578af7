"""A tiny scripted Asterisk Manager for the AMI client's tests.

``FakeAMIFactory`` serves real TCP (``reactor.listenTCP``) or, through
``MemoryNet``, the in-memory connections a ``MemoryReactorClock`` makes.  It
speaks like Asterisk 22 (see shared/ami-traces/REFERENCE.md): a one-line
banner, ``Challenge``/``Login`` (plain or MD5), ``FullyBooted`` after login,
``Ping``, canned answers for other actions, and ``Response: Error`` /
"Authentication failed" followed by a close for a bad login.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from callcenter.ami.message import Message, Splitter, format_message, parse_message

# The recorded traces live beside the repository: <repo>/../shared/ami-traces.
TRACES = Path(__file__).resolve().parents[3] / "shared" / "ami-traces"

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
FULLY_BOOTED = b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 13\r\nLastReload: 13\r\nStatus: Fully Booted\r\n\r\n"
CHALLENGE = "840215733"

Answer = bytes | Callable[["FakeAMIServer", Message], bytes | None]


def trace_bytes(name: str) -> bytes:
    return (TRACES / name).read_bytes()


def trace_index(name: str) -> list[dict]:
    with open(TRACES / f"{name}.idx.jsonl") as f:
        return [json.loads(line) for line in f]


def trace_messages(name: str, action_id: str | None = None) -> bytes:
    """The raw bytes of a trace's messages (all but the banner, or those of one ActionID)."""
    data = trace_bytes(name)
    out = []
    for row in trace_index(name):
        if row["kind"] == "Banner":
            continue
        if action_id is None or row["ActionID"] == action_id:
            out.append(data[row["off"] : row["off"] + row["len"]])
    return b"".join(out)


def retag(data: bytes, action_id: str) -> bytes:
    """Give every message of a recorded answer the ActionID of the action being answered."""
    return re.sub(rb"(?m)^ActionID: [^\r\n]*", b"ActionID: " + action_id.encode(), data)


class FakeAMIServer(Protocol):
    def __init__(self, factory: FakeAMIFactory) -> None:
        self.factory = factory
        self.splitter = Splitter(expect_banner=False)
        self.logged_in = False
        self.challenge: str | None = None
        self.actions: list[Message] = []
        self.closed = False

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.transport.write(self.factory.banner)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True

    def send(self, data: bytes) -> None:
        self.transport.write(data)

    def reply(self, action: Message, *pairs: tuple[str, str]) -> None:
        headers = [pairs[0]]
        if action.action_id is not None:
            headers.append(("ActionID", action.action_id))
        headers.extend(pairs[1:])
        self.send(format_message(headers))

    def dataReceived(self, data: bytes) -> None:
        for block in self.splitter.feed(data):
            msg = parse_message(block)
            self.actions.append(msg)
            self.factory.actions.append(msg)
            self.handle(msg)

    def handle(self, msg: Message) -> None:
        name = (msg.get("Action") or "").lower()
        f = self.factory
        if f.silent:
            return
        if name == "challenge":
            self.challenge = CHALLENGE
            self.reply(msg, ("Response", "Success"), ("Challenge", CHALLENGE))
        elif name == "login":
            if self._good_login(msg):
                self.logged_in = True
                f.logins += 1
                self.reply(msg, ("Response", "Success"), ("Message", "Authentication accepted"))
                if f.fully_booted:
                    self.send(FULLY_BOOTED)
                if f.on_login is not None:
                    f.on_login(self)
            else:
                f.rejections += 1
                self.reply(msg, ("Response", "Error"), ("Message", "Authentication failed"))
                self.transport.loseConnection()
        elif not self.logged_in:
            self.reply(msg, ("Response", "Error"), ("Message", "Permission denied"))
        elif name == "ping":
            if f.answer_ping:
                self.reply(msg, ("Response", "Success"), ("Ping", "Pong"), ("Timestamp", "1795665189.547300"))
        elif msg["Action"] in f.answers:
            answer = f.answers[msg["Action"]]
            data = answer(self, msg) if callable(answer) else answer
            if data is not None:
                self.send(retag(data, msg.action_id or ""))
        else:
            self.reply(msg, ("Response", "Error"), ("Message", "Invalid/unknown command"))

    def _good_login(self, msg: Message) -> bool:
        f = self.factory
        if f.reject or msg.get("Username") != f.username:
            return False
        if (msg.get("AuthType") or "").lower() == "md5":
            if self.challenge is None:
                return False
            return msg.get("Key") == hashlib.md5((self.challenge + f.secret).encode()).hexdigest()
        return msg.get("Secret") == f.secret


class FakeAMIFactory(Factory):
    noisy = False

    def __init__(self, username: str = "admin", secret: str = "s3cret") -> None:
        self.username = username
        self.secret = secret
        self.banner = BANNER
        self.reject = False
        self.silent = False  # read actions, answer none
        self.answer_ping = True
        self.fully_booted = True
        self.answers: dict[str, Answer] = {}
        self.on_login: Callable[[FakeAMIServer], None] | None = None
        self.connections: list[FakeAMIServer] = []
        self.actions: list[Message] = []
        self.logins = 0
        self.rejections = 0

    def buildProtocol(self, addr: object) -> FakeAMIServer:
        return FakeAMIServer(self)

    def actions_named(self, name: str) -> list[Message]:
        return [m for m in self.actions if m.get("Action") == name]


class Link:
    """An in-memory connection between a client protocol and a FakeAMIServer.

    Bytes move only when ``pump`` runs (every helper pumps), so a test sees
    the exchange step by step.  A side that calls loseConnection or
    abortConnection closes both ends on the next pump.
    """

    def __init__(self, client: Protocol, server: FakeAMIServer) -> None:
        self.client = client
        self.server = server
        self.client_transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 40000),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 5038))
        self.server_transport = StringTransport()
        self.closed = False
        client.makeConnection(self.client_transport)
        server.makeConnection(self.server_transport)
        self.pump()

    def pump(self) -> None:
        for _ in range(10_000):
            if self.closed:
                return
            up = self.client_transport.value()
            self.client_transport.clear()
            if up:
                self.server.dataReceived(up)
            down = self.server_transport.value()
            self.server_transport.clear()
            if down:
                self.client.dataReceived(down)
            if self.client_transport.disconnecting or self.server_transport.disconnecting:
                aborted = self.client_transport.disconnected  # abortConnection sets it
                self.close(ConnectionLost("aborted") if aborted else ConnectionDone("closed"))
                return
            if not up and not down:
                return
        raise AssertionError("the link never went quiet")

    def send(self, data: bytes) -> None:
        """Server → client, then pump."""
        self.server_transport.write(data)
        self.pump()

    def close(self, reason: Exception | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        why = Failure(reason or ConnectionDone("closed"))
        self.server.connectionLost(why)
        self.client.connectionLost(why)


class MemoryNet:
    """Completes (or refuses) the TCP connects a client makes on a MemoryReactorClock."""

    def __init__(self, reactor: MemoryReactorClock, server: FakeAMIFactory) -> None:
        self.reactor = reactor
        self.server = server
        self._handled = 0
        self.links: list[Link] = []

    @property
    def waiting(self) -> int:
        """Connection attempts not yet accepted or refused."""
        return len(self.reactor.tcpClients) - self._handled

    def accept(self) -> Link:
        assert self.waiting, "no connection attempt to accept"
        _host, _port, factory, _timeout, _bind = self.reactor.tcpClients[self._handled]
        self._handled += 1
        addr = IPv4Address("TCP", "127.0.0.1", 5038)
        link = Link(factory.buildProtocol(addr), self.server.buildProtocol(addr))
        self.links.append(link)
        return link

    def refuse(self, reason: Exception | None = None) -> None:
        assert self.waiting, "no connection attempt to refuse"
        _host, _port, factory, _timeout, _bind = self.reactor.tcpClients[self._handled]
        connector = self.reactor.connectors[self._handled]
        self._handled += 1
        factory.clientConnectionFailed(connector, Failure(reason or ConnectionRefusedError()))
