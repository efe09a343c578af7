"""A dashboard that stops reading is dropped once over its buffer limit; the
others keep receiving, and what the server holds for it stays bounded.
Over plain TCP and over TLS (``--listen ssl:``), whose transport differs."""

from __future__ import annotations

import os
import socket
import ssl

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOProtocol

from callcenter.web import make_site

from .support import STATIC_DIR, Rig, listen, self_signed, upgrade_request

MAX_BUFFER = 256 * 1024
OBJECT = 4000  # bytes of JSON per object
BATCH = 16  # objects per reactor turn: one frame
FRAME = OBJECT * BATCH
TWISTED_BUFFER = 64 * 1024  # FileDescriptor.bufferSize: the producer is paused past it


def masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload)
    )


def server_buffered(proto) -> int:
    """Bytes Twisted holds for this connection (test-only peek at its buffers)."""
    t = proto.transport
    if isinstance(t, ProtocolWrapper):  # the connection limiter's counting wrapper
        t = t.transport
    held = 0
    if isinstance(t, TLSMemoryBIOProtocol):
        held += len(t._appSendBuffer)
        t = t.transport
    return held + len(t.dataBuffer) - t.offset + t._tempDataLen


async def wait_for(pred, what: str) -> None:
    for _ in range(1000):
        if pred():
            return
        await deferLater(reactor, 0.01)
    raise TimeoutError(what)


async def retry(op, what: str):
    """A non-blocking socket/TLS operation, retried while it would block."""
    for _ in range(1000):
        try:
            return op()
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            await deferLater(reactor, 0.01)
    raise TimeoutError(what)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest_twisted.ensureDeferred
async def test_a_client_that_never_reads_is_dropped_and_others_keep_up(fake_center, tmp_path, tls):
    site = make_site(fake_center, static_dir=STATIC_DIR, reactor=reactor, max_buffer=MAX_BUFFER)
    pems = self_signed(str(tmp_path)) if tls else None
    rig = Rig(center=fake_center, peer=None, site=site, port=await listen(site, tls=pems), tls=tls)
    log: list[dict] = []
    globalLogPublisher.addObserver(log.append)
    raw = slow_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        good = await rig.client()
        await good.hello()

        # Raw socket: small receive window, handshake, HELLO, then never a read.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", rig.portno))
        raw.setblocking(False)

        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            slow_sock = ctx.wrap_socket(raw, do_handshake_on_connect=False)
            await retry(slow_sock.do_handshake, "the TLS handshake")
        await retry(lambda: slow_sock.sendall(upgrade_request(rig.portno, rig.origin)), "sending")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += await retry(lambda: slow_sock.recv(4096), "the handshake answer")
        assert answer.startswith(b"HTTP/1.1 101")
        await retry(lambda: slow_sock.sendall(masked_text_frame(b"HELLO")), "sending HELLO")
        await wait_for(lambda: len(site.dashboards.clients) == 2, "slow client's HELLO")
        local_port = slow_sock.getsockname()[1]
        (slow,) = [c for c in site.dashboards.clients if c.transport.getPeer().port == local_port]

        pad = "x" * (OBJECT - 100)
        sent = 0
        peak = 0
        for batch in range(500):
            for i in range(BATCH):  # one reactor turn: one frame
                fake_center.emit([{"type": "AGENT", "agentid": str(i), "status": "AVAIL",
                                   "queue": "q", "time": batch, "name": pad}])
            sent += 1
            await deferLater(reactor, 0)  # the frame is written at the end of the turn
            if slow.transport.connected:
                peak = max(peak, server_buffered(slow))
            # The reader keeps receiving, frame for frame.
            await wait_for(lambda n=sent: good.count == 1 + n, "the good client's frames")
            if slow not in site.dashboards.clients:
                break
        else:
            raise AssertionError("the client that never reads was never dropped")

        await wait_for(lambda: not slow.transport.connected, "the slow client's disconnection")
        # Bounded by Twisted's write buffer + the limit + one frame (+ TLS records),
        # however much was pushed.
        assert peak <= TWISTED_BUFFER + MAX_BUFFER + FRAME + 4096, peak
        assert sent * FRAME > 2 * (TWISTED_BUFFER + MAX_BUFFER)
        dropped = [e for e in log if e.get("log_format", "").startswith("dashboard {peer} dropped")]
        assert len(dropped) == 1 and dropped[0]["limit"] == MAX_BUFFER
        assert site.dashboards.dropped_slow == 1  # callcenter_dashboards_dropped_slow_total
        (survivor,) = site.dashboards.clients
        assert survivor.transport.getPeer().port == good.transport.getHost().port
        print(f"dropped after {sent} frames ({sent * FRAME} bytes), peak held {peak} bytes")

        # The survivor still works, and the push is timed (callcenter_push_latency_seconds).
        pushes: list[float] = []
        site.dashboards.push_observers.append(pushes.append)
        fake_center.emit([{"type": "AGENT", "agentid": "after", "status": "AVAIL", "queue": "q", "time": 1}])
        assert (await good.until(lambda f: f[0].get("agentid") == "after"))[-1][0]["agentid"] == "after"
        assert len(pushes) == 1 and pushes[0] >= 0
    finally:
        globalLogPublisher.removeObserver(log.append)
        slow_sock.close()
        await rig.stop()
