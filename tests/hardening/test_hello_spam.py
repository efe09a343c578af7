"""Issue 10, point 5: a HELLO flood does not delay another client's command.

200 clients in another process each send ~9 HELLO a second (the attack of the
issue) at a dashboard with 40 agents.  A probe client sends a command (PAUSE of
an unknown agent, answered by an ERROR without the PBX) 30 times during the
flood; the issue's bound is 100 ms.  The median answer time is held to it
(the machine running the tests may be loaded: single samples may be late for
reasons that are not the service's), and the server must have built far fewer
snapshots than HELLOs it received.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater
from web.support import find, start_rig

from callcenter.web.limits import WebLimits

SPAMMER = Path(__file__).with_name("hello_spammer.py")
CLIENTS, RATE, SECONDS = 200, 9.0, 6.0
BOUND = 0.100  # seconds: issue 10's bound on a command's answer under the flood


@pytest_twisted.ensureDeferred
async def test_hello_spam_does_not_delay_another_clients_command():
    # All 200 come from 127.0.0.1: lift the per-address limit, which alone would
    # refuse most of them, to test the HELLO path itself.
    rig = await start_rig(limits=WebLimits(max_per_address=1000))
    spam = None
    try:
        await rig.feed(*(rig.peer.login(str(1000 + i)) for i in range(40)))
        probe = await rig.client()
        await probe.hello()
        spam = subprocess.Popen(
            [sys.executable, str(SPAMMER), str(rig.portno), str(CLIENTS), str(RATE), str(SECONDS)],
            stdout=subprocess.PIPE, text=True)
        for _ in range(200):  # until the flood is on: its clients said HELLO
            if len(rig.site.dashboards.clients) > CLIENTS // 2:
                break
            await deferLater(reactor, 0.05, lambda: None)
        times = []
        for _ in range(30):
            t0 = time.monotonic()
            probe.send("PAUSE:9999")
            while True:
                frame = await probe.frame()
                if find(frame, "ERROR"):
                    break
            times.append(time.monotonic() - t0)
            await deferLater(reactor, 0.1, lambda: None)
        out, _ = spam.communicate(timeout=60)
        hellos = int(out.strip() or 0)
        assert hellos > CLIENTS * RATE * 2  # the flood did happen
        assert rig.site.dashboards.snapshots < hellos / 5
        assert statistics.median(times) < BOUND, sorted(times)
    finally:
        if spam is not None and spam.poll() is None:
            spam.kill()
            spam.wait()
        await rig.stop()
