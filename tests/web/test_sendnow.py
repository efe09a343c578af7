"""``sendnow.write_now`` over real loopback TCP: what it reads of Twisted is
still there, small frames leave without waiting for a reactor turn, and bytes
are never reordered or lost when the socket is full.  (TLS and the slow-reader
drop through the same path: ``test_slow_client.py``.)"""

from __future__ import annotations

import socket

import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.internet.task import deferLater
from twisted.internet.tcp import Connection
from twisted.test.proto_helpers import StringTransport

from callcenter.web.protocol import autobahn_prepared_frame
from callcenter.web.sendnow import DirectWriter, has_queued, plain_socket, write_now


class _Server(protocol.Protocol):
    def connectionMade(self) -> None:
        self.factory.connected.callback(self)


async def _pair() -> tuple[protocol.Protocol, socket.socket, object]:
    factory = protocol.Factory.forProtocol(_Server)
    factory.connected = pytest_twisted.defer.Deferred()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    server = await factory.connected
    return server, client, port


async def _close(server: protocol.Protocol, client: socket.socket, port: object) -> None:
    client.close()
    server.transport.abortConnection()
    await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_twisted_still_has_what_sendnow_reads() -> None:
    """Fails loudly on a Twisted release that renames or retypes the buffer
    attributes the adapter relies on."""
    server, client, port = await _pair()
    try:
        t = server.transport
        assert isinstance(t, Connection)
        assert t.TLS is False
        assert isinstance(t.getHandle(), socket.socket)
        assert isinstance(t.dataBuffer, bytes)
        assert isinstance(t.offset, int)
        assert isinstance(t._tempDataBuffer, list)
        assert plain_socket(t) is t.getHandle()
        assert not has_queued(t)
        t.write(b"held until the next turn")  # Twisted's own write queues it
        assert has_queued(t)
        for _ in range(100):
            await deferLater(reactor, 0.01)
            if not has_queued(t):
                break
        assert not has_queued(t)
    finally:
        await _close(server, client, port)


@pytest_twisted.ensureDeferred
async def test_a_small_frame_leaves_at_once() -> None:
    server, client, port = await _pair()
    try:
        frame = b"\x81\x05HELLO"
        write_now(server.transport, frame)
        # No reactor turn in between: the peer can read it right now, and the
        # socket was never registered for writing.
        client.settimeout(5)
        assert client.recv(100) == frame
        assert server.transport not in reactor.getWriters()
        assert not has_queued(server.transport)
    finally:
        await _close(server, client, port)


@pytest_twisted.ensureDeferred
async def test_nothing_reordered_or_lost_when_the_socket_is_full() -> None:
    server, client, port = await _pair()
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        server.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        chunks = [b"%06d:" % i + b"x" * 1000 + b";" for i in range(300)]  # 300 kB
        for chunk in chunks:  # far more than both socket buffers: most is queued
            write_now(server.transport, chunk)
        assert has_queued(server.transport)
        expected = b"".join(chunks)
        got = bytearray()
        client.setblocking(False)
        for _ in range(100_000):  # a bound, not a timing: each pass yields to the reactor
            try:
                while data := client.recv(1 << 16):
                    got += data
            except BlockingIOError:
                pass
            if len(got) >= len(expected):
                break
            await deferLater(reactor, 0.001)
        assert len(got) == len(expected)
        assert bytes(got) == expected
    finally:
        await _close(server, client, port)


def test_other_transports_use_their_own_write() -> None:
    t = StringTransport()
    assert plain_socket(t) is None
    write_now(t, b"abc")
    write_now(t, b"def")
    assert t.value() == b"abcdef"


@pytest_twisted.ensureDeferred
async def test_the_prepared_frame_adapter_sends_what_autobahn_would(rig) -> None:
    """``autobahn_prepared_frame`` reads Autobahn's PreparedMessage and its
    compression state: on a real dashboard connection it must give exactly
    the bytes ``sendPreparedMessage`` hands to ``sendData``, and step aside
    while Autobahn holds queued bytes of its own."""
    c = await rig.client()
    await c.hello()
    proto = rig.site.dashboards.clients[0]
    prepared = proto.factory.prepareMessage(b'{"type":"AGENT"}', isBinary=False)
    handed: list[bytes] = []
    proto.sendData = lambda data, sync=False, chopsize=None: handed.append(data)
    try:
        proto.sendPreparedMessage(prepared)
    finally:
        del proto.sendData
    assert handed == [autobahn_prepared_frame(proto, prepared)] == [b'\x81\x10{"type":"AGENT"}']
    proto.send_queue.append((b"x", None))
    try:
        assert autobahn_prepared_frame(proto, prepared) is None
    finally:
        proto.send_queue.clear()
    # The fast path delivers it like any frame.
    proto.send_prepared(prepared)
    assert await c.frame() == [{"type": "AGENT"}]


@pytest_twisted.ensureDeferred
async def test_a_direct_writer_leaves_a_closing_connection_to_twisted() -> None:
    server, client, port = await _pair()
    try:
        t = server.transport
        writer = DirectWriter(t)
        writer.write(b"one")
        client.settimeout(5)
        assert client.recv(100) == b"one" and not has_queued(t)  # straight to the socket
        t.loseConnection()  # closing: Twisted owns what is still written, and the close
        writer.write(b"two")
        assert has_queued(t)
        got = b""
        client.setblocking(False)
        for _ in range(1000):  # a bound, not a timing
            await deferLater(reactor, 0.005)
            try:
                data = client.recv(100)
            except BlockingIOError:
                continue
            if not data:
                break  # the close, after what was written
            got += data
        assert got == b"two"
    finally:
        await _close(server, client, port)
