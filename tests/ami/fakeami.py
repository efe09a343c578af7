"""A tiny scripted Asterisk Manager for the AMI client's tests.

``FakeAMIFactory`` serves real TCP (``reactor.listenTCP``) or, through
``MemoryNet``, the in-memory connections a ``MemoryReactorClock`` makes.  It
speaks like Asterisk 22 (see support/amipeer.py): a one-line banner,
``Challenge``/``Login`` (plain or MD5), ``FullyBooted`` after login, ``Ping``,
canned answers for other actions, and ``Response: Error`` / "Authentication
failed" followed by a close for a bad login.
"""

from __future__ import annotations

import json
from pathlib import Path

from support.amipeer import (
    BANNER,
    CHALLENGE,
    Answer,
    AsteriskManager,
    AsteriskManagerFactory,
    fully_booted,
    retag,
)
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from callcenter.ami.message import Message

__all__ = ["BANNER", "CHALLENGE", "FULLY_BOOTED", "TRACES", "Answer", "FakeAMIFactory", "FakeAMIServer",
           "Link", "MemoryNet", "retag", "trace_bytes", "trace_index", "trace_messages"]

# The recorded traces live beside the repository: <repo>/../shared/ami-traces.
TRACES = Path(__file__).resolve().parents[3] / "shared" / "ami-traces"
if not TRACES.is_dir():  # the tree may live elsewhere; the traces sit beside it
    TRACES = Path("/work/shared/ami-traces")

FULLY_BOOTED = fully_booted(13)


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


FakeAMIServer = AsteriskManager


class FakeAMIFactory(AsteriskManagerFactory):
    booted_event = FULLY_BOOTED
    ping_timestamp = "1795665189.547300"

    def __init__(self, username: str = "admin", secret: str = "s3cret") -> None:
        super().__init__(username, secret)

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
