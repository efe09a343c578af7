"""A HELLO flood from many WebSocket clients, run as its own process.

``python hello_spammer.py PORT CLIENTS RATE SECONDS``: opens CLIENTS
connections to ``/callcenter``, and each sends ``HELLO`` RATE times a second
for SECONDS, reading (and dropping) whatever comes back so that it is not cut
off as a slow reader.  Prints how many HELLOs it sent.  Plain sockets and
``selectors``: the flood must not share the test's reactor.
"""

from __future__ import annotations

import base64
import os
import selectors
import socket
import sys
import time


def _frame(text: bytes) -> bytes:
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text))


def main() -> None:
    port, clients, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /callcenter HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Origin: http://127.0.0.1:{port}\r\n\r\n").encode())
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    hello = _frame(b"HELLO")
    sent = 0
    start = time.monotonic()
    next_round = start
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        if now >= next_round:
            for s in socks:
                try:
                    s.send(hello)
                    sent += 1
                except OSError:
                    pass
            next_round += 1.0 / rate
        for key, _ in sel.select(timeout=max(0.0, next_round - time.monotonic())):
            try:
                if not key.fileobj.recv(1 << 16):
                    sel.unregister(key.fileobj)
            except OSError:
                sel.unregister(key.fileobj)
    print(sent)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
