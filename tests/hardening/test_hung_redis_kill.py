"""Issue 10, point 2: Redis hangs, then the service is SIGKILLed: no line lost or doubled.

Real processes: a throw-away ``redis-server`` that hangs, and ``twistd callcenter``
with ``--report-wait 0.5``.  While Redis hangs the PBX sends 40 more status
changes; their lines must reach the file (through the journal) within the
wait, and the service is then SIGKILLed.  Redis is resumed (it may then apply
whatever it had already received) and a new process starts on the same Redis
and file, against a PBX whose status is the one at the kill, and gets the rest
of the traffic.  The report must be exactly the uninterrupted replay's, and
Redis must hold exactly its state.

Two hangs: ``sigstop`` (the whole server stopped; resumed, it applies what
the kernel had buffered, so Redis gets the events late) and ``pause``
(``CLIENT PAUSE ... WRITE``: Redis reads but executes no write, and drops the
killed client's queued transactions: the journal replay must supply them).
"""

from __future__ import annotations

import signal
from datetime import datetime

import pytest
import pytest_twisted
from store.support import UTC, Rig, assert_redis_is, redis_is, sleep, wait_for
from store.test_kill import PBX, SECRET, Service, _lines
from twisted.internet import reactor

from tests.support.pbxstate import PbxState

from .traffic import messages, toggle_blocks

BEFORE, DURING, AFTER = 20, 40, 20


def _resume(redis, hang: str) -> None:
    if hang == "sigstop":
        redis.proc.send_signal(signal.SIGCONT)
    else:
        redis.command("CLIENT", "UNPAUSE")


def _traffic() -> list[tuple[float, bytes]]:
    # Close to the real clock (the service ignores Timestamps a day away from it).
    now = datetime.now(UTC).timestamp()
    return toggle_blocks(BEFORE + DURING + AFTER, start=now - 600)


@pytest.mark.parametrize("hang", ["sigstop", "pause"])
@pytest_twisted.ensureDeferred
async def test_hung_redis_then_sigkill_loses_and_doubles_no_line(tmp_path, redis_server, hang):
    blocks = _traffic()
    events = messages(blocks)
    login = len(blocks) - (BEFORE + DURING + AFTER)
    cut1, cut2 = login + BEFORE, login + BEFORE + DURING
    whole = Rig(events[0][0])
    whole.feed(events)
    at_kill = Rig(events[0][0])
    at_kill.feed(events[:cut2])
    first_part = Rig(events[0][0])
    first_part.feed(events[:cut1])

    report = tmp_path / "report.csv"
    ports, procs = [], []
    stopped = False
    try:
        pbx1 = PBX(SECRET, [b for _, b in blocks[:cut1]])
        ports.append(reactor.listenTCP(0, pbx1, interface="127.0.0.1"))
        s1 = Service(tmp_path, "s1", ports[-1].getHost().port, redis_server.url, report,
                     extra=("--report-wait", "0.5"))
        procs.append(s1)
        await wait_for(
            lambda: len(_lines(report)) == len(first_part.lines)
            and redis_is(redis_server, first_part.center),
            timeout=60, what=f"the first part ({s1.log})",
        )

        if hang == "sigstop":
            redis_server.proc.send_signal(signal.SIGSTOP)  # hung: connected, never answers
        else:
            redis_server.command("CLIENT", "PAUSE", "60000", "WRITE")
        stopped = True
        pbx1.connections[-1].send(b"".join(b for _, b in blocks[cut1:cut2]))
        # Within the bounded wait (not the 30 s reply timeout) the lines are in the file.
        await wait_for(lambda: len(_lines(report)) == len(at_kill.lines), timeout=20,
                       what=f"the lines written while Redis hangs ({s1.log})")
        assert (tmp_path / "report.csv.journal").stat().st_size > 0
        s1.kill(signal.SIGKILL)
        await sleep(0.2)  # Redis notices the closed connection
        _resume(redis_server, hang)
        stopped = False
        assert _lines(report) == at_kill.lines

        items, channels = PbxState().feed(events[:cut2]).answers()
        pbx2 = PBX(SECRET, [b for _, b in blocks[cut2:]], items, channels)
        ports.append(reactor.listenTCP(0, pbx2, interface="127.0.0.1"))
        s2 = Service(tmp_path, "s2", ports[-1].getHost().port, redis_server.url, report)
        procs.append(s2)
        await wait_for(
            lambda: len(_lines(report)) >= len(whole.lines) and redis_is(redis_server, whole.center),
            timeout=60, what=f"the restart to catch up ({s2.log})",
        )
        await sleep(0.5)  # a doubled line would come with the resync, already done
        s2.kill(signal.SIGTERM)
        assert _lines(report) == whole.lines
        assert_redis_is(redis_server, whole.center)
        if hang == "pause":
            assert "replayed" in s2.log.read_text()
    finally:
        if stopped:
            _resume(redis_server, hang)
        for p in procs:
            if p.alive():
                p.kill(signal.SIGKILL)
        for port in ports:
            await port.stopListening()
