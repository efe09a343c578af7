"""Issue 10, point 4: under a descriptor limit, an attack leaves room for Redis.

The real service (``twistd callcenter --simulate``) runs under
``prlimit --nofile=256``; --max-connections is left far above that, so the
service must lower it itself to keep ``--fd-reserve`` descriptors free.  A
dashboard connects, then 400 sockets that never send a byte; Redis is
restarted during the attack and must be reconnected to (and written), and the
dashboard keeps getting its pushes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytest_twisted
from store.conftest import free_port
from twisted.internet import reactor
from twisted.internet.task import deferLater
from web.support import Rig

MAIN = Path(__file__).resolve().parents[2]
TWISTD = Path(sys.executable).with_name("twistd")
PRLIMIT = shutil.which("prlimit")


async def _until(pred, timeout: float, what: str) -> None:
    for _ in range(int(timeout / 0.05)):
        if pred():
            return
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(PRLIMIT is None, reason="prlimit (util-linux) is not installed")
@pytest_twisted.ensureDeferred
async def test_an_attack_under_a_descriptor_limit_leaves_room_for_redis(tmp_path, redis_server):
    port = free_port()
    log = tmp_path / "service.log"
    env = dict(os.environ, PYTHONPATH=str(MAIN))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [PRLIMIT, "--nofile=256:256", str(TWISTD), "-n", "--pidfile=", "callcenter",
             "--simulate", "--sim-calls-per-minute", "60", "--listen",
             f"tcp:{port}:interface=127.0.0.1", "--redis", redis_server.url,
             "--report", str(tmp_path / "report.csv"), "--max-connections", "5000",
             "--max-per-address", "5000", "--fd-reserve", "64"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    attackers: list[socket.socket] = []
    dashboard = None
    try:
        await _until(lambda: b"dashboard at" in log.read_bytes(), 30, f"the service ({log})")
        text = log.read_text()
        assert "dashboard connections limited to" in text
        rig = SimpleNamespace(portno=port, tls=False, clients=[], origin=f"http://127.0.0.1:{port}")
        dashboard = await Rig.client(rig)
        await dashboard.hello()

        for i in range(400):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            attackers.append(s)
            if i % 20 == 19:
                await deferLater(reactor, 0.01, lambda: None)
        await deferLater(reactor, 1.0, lambda: None)

        def closed(s: socket.socket) -> bool:
            try:
                return s.recv(1) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True

        refused = sum(closed(s) for s in attackers)
        assert refused > 200  # at most 256 - reserve - what the service had open

        # Redis goes away and comes back during the attack: the store reconnects.
        redis_server.stop()
        await _until(lambda: b"connection lost" in log.read_bytes(), 30, "the store to notice")
        redis_server.start()
        await _until(lambda: b"is back after" in log.read_bytes(), 30, f"Redis reconnect ({log})")
        await _until(lambda: b"in step again" in log.read_bytes() or redis_server.command(
            "EXISTS", "callcenter:agents") == 1, 30, "the state rewritten")
        # The dashboard connected before the attack is still served.
        seen = dashboard.count
        await _until(lambda: dashboard.count > seen, 30, "a push to the dashboard")
        assert "Too many open files" not in log.read_text()
    finally:
        for s in attackers:
            s.close()
        if dashboard is not None and dashboard.transport is not None:
            dashboard.transport.abortConnection()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
