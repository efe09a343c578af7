"""Memory per idle dashboard, and the service's total under the connection limits.

Run by hand (not a test):  .venv/bin/python benchmarks/connection_limits.py
    [--dashboards 200] [--attackers 2000] [--max-connections 512] [--max-per-address 5000]

Two processes on loopback:

* the server (this file with ``--serve``): the real ``Callcenter`` and
  ``make_site`` with ``WebLimits`` (as ``twistd callcenter`` wires them),
  no AMI, Redis or report: only the web side is measured;
* the driver (this process, plain sockets): N WebSocket dashboards that say
  HELLO and then only read, then M sockets that connect and never send or
  read a byte (issue 10's attack: 1,000 of them drove RSS to ~820 MB).

The server's RSS is read from /proc/<pid>/statm: after start, after the N
dashboards (per dashboard = growth / N), and after the attack (the total the
limits allow; connections over --max-connections are closed at accept).
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PAGE = os.sysconf("SC_PAGE_SIZE")


def serve(max_connections: int, max_per_address: int) -> None:
    sys.path.insert(0, ROOT)
    from twisted.internet import reactor

    from callcenter.center import Callcenter
    from callcenter.web import make_site
    from callcenter.web.limits import WebLimits

    center = Callcenter(reactor, sla=10)
    limits = WebLimits(max_connections=max_connections, max_per_address=max_per_address)
    site = make_site(center, static_dir=os.path.join(ROOT, "static"), reactor=reactor, limits=limits)
    port = reactor.listenTCP(0, site, interface="127.0.0.1", backlog=1024)
    print(port.getHost().port, flush=True)
    reactor.run()


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def dashboard(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /callcenter HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Origin: http://127.0.0.1:{port}\r\n\r\n").encode())
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x85]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"HELLO")))
    s.settimeout(5)
    s.recv(65536)
    s.setblocking(False)
    return s


def drain(socks: list[socket.socket]) -> None:
    for s in socks:
        try:
            while s.recv(65536):
                pass
        except (BlockingIOError, OSError):
            pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--dashboards", type=int, default=200)
    ap.add_argument("--attackers", type=int, default=2000)
    ap.add_argument("--max-connections", type=int, default=512)
    ap.add_argument("--max-per-address", type=int, default=5000)
    a = ap.parse_args()
    if a.serve:
        serve(a.max_connections, a.max_per_address)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--max-connections", str(a.max_connections),
         "--max-per-address", str(a.max_per_address)],
        stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        time.sleep(0.5)
        base = rss(server.pid)
        dash = [dashboard(port) for _ in range(a.dashboards)]
        time.sleep(1.0)
        drain(dash)
        with_dash = rss(server.pid)
        attack = []
        for _ in range(a.attackers):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            attack.append(s)
        time.sleep(2.0)
        drain(dash)
        closed = 0
        for s in attack:
            try:
                closed += s.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        total = rss(server.pid)
        per = (with_dash - base) / max(1, a.dashboards)
        print(f"RSS at start              {base / 2**20:8.1f} MiB")
        print(f"per idle dashboard        {per / 1024:8.1f} KiB  ({a.dashboards} dashboards)")
        print(f"after {a.attackers} idle sockets {total / 2**20:8.1f} MiB  "
              f"({closed} closed at accept, --max-connections {a.max_connections})")
        print(f"projected at the limit    {(base + per * a.max_connections) / 2**20:8.1f} MiB")
        for s in dash + attack:
            s.close()
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
