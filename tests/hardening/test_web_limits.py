"""Issue 10, points 4, 6 and 7: connection limits, slow/large requests, log floods.

The real site (``make_site``) with the real Callcenter fed by a fake PBX over
loopback (``web.support.start_rig``); attackers are plain sockets.
"""

from __future__ import annotations

import socket

import pytest_twisted
from autobahn.twisted.websocket import WebSocketServerProtocol
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, formatEvent
from web.support import find, has, raw_request, start_rig, upgrade_request

from callcenter.web.limits import WebLimits
from callcenter.web.protocol import autobahn_has_queued


def _sleep(seconds: float):
    return deferLater(reactor, seconds, lambda: None)


def _closed(sock: socket.socket) -> bool:
    """The server closed this socket (EOF, or reset)."""
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _warnings(logs, text: str) -> list[str]:
    """Lines at info level or above (what twistd writes) containing ``text``."""
    return [formatEvent(e) for e in logs.events
            if e.get("log_level", LogLevel.debug) >= LogLevel.info and text in formatEvent(e)]


async def _connect_many(port: int, n: int) -> list[socket.socket]:
    """n non-blocking connections, letting the reactor accept as they come."""
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        if i % 10 == 9:
            await _sleep(0.01)
    return socks


@pytest_twisted.ensureDeferred
async def test_over_limit_connections_are_closed_at_accept_and_a_dashboard_keeps_working(logs):
    rig = await start_rig(limits=WebLimits(max_connections=40, max_per_address=1000))
    attackers: list[socket.socket] = []
    try:
        await rig.feed(rig.peer.login("1001"))
        dashboard = await rig.client()
        await dashboard.hello()
        attackers += await _connect_many(rig.portno, 200)  # they never send or read a byte
        await _sleep(0.5)
        closed = [s for s in attackers if _closed(s)]
        # 40 connections at most, the dashboard's included: the rest closed at accept.
        assert len(closed) == 200 - 39
        assert rig.site.limiter.open == 40
        # The dashboard is served all the while.
        uid = rig.peer.new_uid()
        await rig.feed(rig.peer.join(uid, "5550001"))
        await dashboard.until(has("CALL", id=uid, status="QUEUED"))
        # 161 refusals: one line and a count, not 161 lines.
        assert len(_warnings(logs, "closed at accept")) == 1
        rig.site.limiter.throttle.flush()
        assert _warnings(logs, "160 more like this")
        for s in attackers:
            s.close()
        await _sleep(0.3)
        assert rig.site.limiter.open == 1 and rig.site.limiter.per_address == {"127.0.0.1": 1}
    finally:
        for s in attackers:
            s.close()
        await rig.stop()


@pytest_twisted.ensureDeferred
async def test_per_address_limit(logs):
    rig = await start_rig(limits=WebLimits(max_connections=100, max_per_address=5))
    socks = []
    try:
        socks += await _connect_many(rig.portno, 12)
        await _sleep(0.3)
        assert sum(_closed(s) for s in socks) == 7
        assert len(_warnings(logs, "--max-per-address 5")) == 1
    finally:
        for s in socks:
            s.close()
        await rig.stop()


@pytest_twisted.ensureDeferred
async def test_slow_headers_get_408_and_big_bodies_413_before_spooling():
    rig = await start_rig(limits=WebLimits(request_timeout=0.5, max_body=4096))
    try:
        # One header byte at a time, slower than the deadline allows in total.
        s = socket.create_connection(("127.0.0.1", rig.portno))
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        s.settimeout(5)
        try:
            for byte in b"X-Slow: 1":
                s.sendall(bytes([byte]))  # each byte restarts Twisted's own idle timer
                await _sleep(0.1)
        except OSError:
            pass  # closed under us: the answer is waiting
        answer = s.recv(200)
        assert answer.startswith(b"HTTP/1.1 408 ")
        s.close()

        # A body announced bigger than the limit: refused on the headers alone.
        big = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 314572800\r\n\r\n"
        assert (await raw_request(rig.portno, big)).startswith(b"HTTP/1.1 413 ")
        # A chunked one: refused once it passes the limit, not spooled to the end.
        s = socket.create_connection(("127.0.0.1", rig.portno))
        s.settimeout(5)
        s.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            s.sendall(b"800\r\n" + b"x" * 0x800 + b"\r\n")
        await _sleep(0.2)
        assert s.recv(200).startswith(b"HTTP/1.1 413 ")
        s.close()
        # A page request within the limits still works.
        ok = await raw_request(rig.portno, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 ")
    finally:
        await rig.stop()


@pytest_twisted.ensureDeferred
async def test_a_flood_of_refused_handshakes_logs_a_bounded_number_of_lines(logs):
    rig = await start_rig()
    try:
        before = len(logs.events)
        for _ in range(300):
            answer = await raw_request(rig.portno, upgrade_request(rig.portno, "http://evil.example"))
            assert b" 403 " in answer.split(b"\r\n")[0]
        flood = [e for e in logs.events[before:]
                 if e.get("log_level", LogLevel.debug) >= LogLevel.info
                 and not e.get("log_namespace", "").startswith("twisted.internet.endpoints")]
        # Was three lines per refusal (issue 10): now the first refusal's line, then counting.
        assert len(_warnings(logs, "refused: origin")) == 1
        assert len(flood) <= 4, [e.get("log_format") for e in flood]
        ok = await rig.client()
        assert find(await ok.hello(), "STATS")
        rig.site.limiter.throttle.flush()
        assert _warnings(logs, "299 more like this in the last 60 s: dashboard")
    finally:
        await rig.stop()


def test_autobahn_send_queue_adapter_still_matches_the_library():
    # autobahn_has_queued() reads WebSocketProtocol.send_queue (no public API
    # says whether Autobahn holds queued bytes): fail loudly if it changes.
    proto = WebSocketServerProtocol()
    proto.send_queue = __import__("collections").deque()
    assert autobahn_has_queued(proto) is False
    proto.send_queue.append((b"x", None))
    assert autobahn_has_queued(proto) is True
    import autobahn.websocket.protocol as wsp

    source = __import__("inspect").getsource(wsp.WebSocketProtocol)
    assert "self.send_queue = deque()" in source and "self.send_queue.append" in source
