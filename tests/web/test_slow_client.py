"""A dashboard that stops reading is dropped once over its buffer limit; the
others keep receiving, and what the server holds for it stays bounded."""

from __future__ import annotations

import os
import socket

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher

from callcenter.web import make_site

from .support import STATIC_DIR, Rig, listen, upgrade_request

MAX_BUFFER = 256 * 1024
FRAME = 4000  # bytes of JSON per pushed frame
BATCH = 16


def masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload)
    )


def server_buffered(proto) -> int:
    """Bytes Twisted holds for this connection (test-only peek at tcp.Connection)."""
    t = proto.transport
    return len(t.dataBuffer) - t.offset + t._tempDataLen


async def wait_for(pred, what: str) -> None:
    for _ in range(1000):
        if pred():
            return
        await deferLater(reactor, 0.01)
    raise TimeoutError(what)


@pytest_twisted.ensureDeferred
async def test_a_client_that_never_reads_is_dropped_and_others_keep_up(fake_center):
    site = make_site(fake_center, static_dir=STATIC_DIR, reactor=reactor, max_buffer=MAX_BUFFER)
    rig = Rig(center=fake_center, peer=None, site=site, port=await listen(site))
    log: list[dict] = []
    globalLogPublisher.addObserver(log.append)
    slow_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        good = await rig.client()
        await good.hello()

        # Raw TCP: small receive window, handshake, HELLO, then never a read.
        slow_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow_sock.connect(("127.0.0.1", rig.portno))
        slow_sock.setblocking(False)
        slow_sock.sendall(upgrade_request(rig.portno, None))
        answer = b""

        def upgraded() -> bool:
            nonlocal answer
            try:
                answer += slow_sock.recv(4096)
            except BlockingIOError:
                pass
            return b"\r\n\r\n" in answer

        await wait_for(upgraded, "the handshake answer")
        assert answer.startswith(b"HTTP/1.1 101")
        slow_sock.sendall(masked_text_frame(b"HELLO"))
        await wait_for(lambda: len(site.dashboards.clients) == 2, "slow client's HELLO")
        local_port = slow_sock.getsockname()[1]
        (slow,) = [c for c in site.dashboards.clients if c.transport.getPeer().port == local_port]

        pad = "x" * (FRAME - 100)
        sent = 0
        peak = 0
        for batch in range(2000):
            for i in range(BATCH):
                fake_center.emit([{"type": "AGENT", "agentid": str(i), "status": "AVAIL",
                                   "queue": "q", "time": batch, "name": pad}])
            sent += BATCH
            if slow.transport.connected:
                peak = max(peak, server_buffered(slow))
            # The reader keeps receiving, frame for frame.
            await wait_for(lambda: good.count == 1 + sent, "the good client's frames")
            if slow not in site.dashboards.clients:
                break
        else:
            raise AssertionError("the client that never reads was never dropped")

        await wait_for(lambda: not slow.transport.connected, "the slow client's disconnection")
        # Bounded: Twisted's 64 KiB write buffer + the limit + one frame, whatever was sent.
        assert peak <= 64 * 1024 + MAX_BUFFER + FRAME + 100, peak
        assert sent * FRAME > 2 * (64 * 1024 + MAX_BUFFER)  # much more was pushed than held
        dropped = [e for e in log if e.get("log_format", "").startswith("dashboard {peer} dropped")]
        assert len(dropped) == 1 and dropped[0]["limit"] == MAX_BUFFER
        (survivor,) = site.dashboards.clients
        assert survivor.transport.getPeer().port == good.transport.getHost().port
        print(f"dropped after {sent} frames ({sent * FRAME} bytes), peak held {peak} bytes")

        # The survivor still works.
        fake_center.emit([{"type": "AGENT", "agentid": "after", "status": "AVAIL", "queue": "q", "time": 1}])
        assert (await good.until(lambda f: f[0].get("agentid") == "after"))[-1][0]["agentid"] == "after"
    finally:
        globalLogPublisher.removeObserver(log.append)
        slow_sock.close()
        await rig.stop()
