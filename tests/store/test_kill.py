"""SIGKILL the real service mid-trace and start it again: nothing lost, nothing twice.

Three ``twistd callcenter`` processes against one throw-away redis-server:

- run A (db 1): the whole trace, uninterrupted;
- run B (db 2): the trace up to a cut where calls are queued and connected, then
  SIGKILL; a new process on the same Redis and a PBX that answers QueueStatus /
  CoreShowChannels with its state at the cut (derived from the events up to
  it), then the rest of the trace.

Final Redis contents (entities and day counters) and the report file of B
equal A's, and both equal an in-process replay of the trace.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_twisted
from support.fake_asterisk import AsteriskManagerFactory
from twisted.internet import reactor

from callcenter.ami.message import Message
from tests.support.pbxstate import PbxState

from .support import (
    Rig,
    assert_redis_is,
    busiest_cut,
    parse_block,
    redis_is,
    state_dump,
    trace_blocks,
    wait_for,
)

MAIN = Path(__file__).resolve().parents[2]
TWISTD = Path(sys.executable).with_name("twistd")
SECRET = "kill-test-secret"
UTC = ZoneInfo("UTC")


def _shift(start: float, end: float) -> int:
    """Whole seconds that move the trace next to the real clock, within one UTC day
    (the service ignores Timestamps more than a day away from its clock)."""
    now = datetime.now(UTC).timestamp()
    begin = now - (end - start) - 120
    if datetime.fromtimestamp(begin, UTC).date() != datetime.fromtimestamp(now, UTC).date():
        begin = now + 60
    return int(begin - start)


class Service:
    def __init__(
        self, tmp: Path, name: str, ami_port: int, redis_url: str, report: Path,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.log = tmp / f"{name}.log"
        env = dict(os.environ, PYTHONPATH=str(MAIN))
        env.pop("CALLCENTER_AMI_SECRET", None)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    str(TWISTD),
                    "-n",
                    "--pidfile=",
                    "callcenter",
                    "--ami",
                    f"tcp:host=127.0.0.1:port={ami_port}",
                    "--ami-secret",
                    SECRET,
                    "--listen",
                    "tcp:0:interface=127.0.0.1",
                    "--redis",
                    redis_url,
                    "--report",
                    str(report),
                    "--timezone",
                    "UTC",
                    *extra,
                ],
                env=env,
                cwd=tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)
        self.proc.wait(30)


_TS = re.compile(rb"(?m)^Timestamp: (\d+\.\d+)")


def shifted(block: bytes, shift: int) -> bytes:
    """The event with its Timestamp ``shift`` seconds later: the service runs on
    the real clock and ignores a Timestamp more than a day from it."""
    return _TS.sub(lambda m: b"Timestamp: %.6f" % (float(m.group(1)) + shift), block)


def PBX(secret: str, events: list[bytes], items: list[Message] = (),  # type: ignore[assignment]  # noqa: N802
        channels: list[Message] = ()) -> AsteriskManagerFactory:  # type: ignore[assignment]
    """A PBX that logs in on ``secret`` alone (after a wrong one the line stays
    up), answers CoreShowChannels / QueueStatus with ``channels`` / ``items``
    and streams ``events`` after its first QueueStatus answer."""
    pbx = AsteriskManagerFactory(secret=secret)
    pbx.close_on_reject = False
    pbx.forget_closed = True
    pbx.answer_list("CoreShowChannels", "CoreShowChannelsComplete", lambda: channels, "Channels will follow")
    pbx.answer_list("QueueStatus", "QueueStatusComplete", lambda: items, "Queue status will follow")
    pbx.then_push("QueueStatus", b"".join(events))
    return pbx


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True) if path.exists() else []


async def stop_all(procs: list[Service], ports: list) -> None:
    """A kill test's clean-up: SIGKILL the services still running, close the PBXes."""
    for p in procs:
        if p.alive():
            p.kill(signal.SIGKILL)
    for port in ports:
        await port.stopListening()


async def _serve(pbx: AsteriskManagerFactory):
    return reactor.listenTCP(0, pbx, interface="127.0.0.1")


@pytest.mark.parametrize("name", ["answered", "pause-during-call"])
@pytest_twisted.ensureDeferred
async def test_sigkill_and_restart_equals_uninterrupted_run(tmp_path, redis_server, name):
    raw = trace_blocks(name)
    shift = _shift(raw[0][0], raw[-1][0])
    blocks = [(t + shift, shifted(b, shift)) for t, b in raw]
    events = [(t, parse_block(b)) for t, b in blocks]
    cut = busiest_cut(events)
    whole = Rig(events[0][0])
    whole.feed(events)
    at_cut = Rig(events[0][0])
    at_cut.feed(events[:cut])
    live = {c.status for c in at_cut.center.calls.values()}
    assert at_cut.center.connections and "QUEUED" in live or name != "answered"

    procs: list[Service] = []
    ports = []
    try:
        # Run A: uninterrupted.
        pbx_a = PBX(SECRET, [b for _, b in blocks])
        ports.append(await _serve(pbx_a))
        report_a = tmp_path / "a.csv"
        a = Service(tmp_path, "a", ports[-1].getHost().port, redis_server.url[:-1] + "1", report_a)
        procs.append(a)
        await wait_for(
            lambda: (
                len(_lines(report_a)) == len(whole.lines)
                and redis_is(redis_server, whole.center, 1)
            ),
            timeout=60,
            what=f"run A to finish ({a.log})",
        )
        a.kill(signal.SIGTERM)

        # Run B, part 1: up to the cut, then SIGKILL.
        pbx_b1 = PBX(SECRET, [b for _, b in blocks[:cut]])
        ports.append(await _serve(pbx_b1))
        report_b = tmp_path / "b.csv"
        url_b = redis_server.url[:-1] + "2"
        b1 = Service(tmp_path, "b1", ports[-1].getHost().port, url_b, report_b)
        procs.append(b1)
        await wait_for(
            lambda: (
                len(_lines(report_b)) == len(at_cut.lines)
                and redis_is(redis_server, at_cut.center, 2)
            ),
            timeout=60,
            what=f"run B to reach the cut ({b1.log})",
        )
        b1.kill(signal.SIGKILL)
        assert b1.proc.returncode == -signal.SIGKILL
        assert _lines(report_b) == at_cut.lines

        # Run B, part 2: the PBX as it is at the cut, then the rest of the trace.
        items, channels = PbxState().feed(events[:cut]).answers()
        pbx_b2 = PBX(SECRET, [b for _, b in blocks[cut:]], items, channels)
        ports.append(await _serve(pbx_b2))
        b2 = Service(tmp_path, "b2", ports[-1].getHost().port, url_b, report_b)
        procs.append(b2)
        await wait_for(
            lambda: (
                len(_lines(report_b)) >= len(whole.lines)
                and redis_is(redis_server, whole.center, 2)
            ),
            timeout=60,
            what=f"run B to finish ({b2.log})",
        )
        assert pbx_b2.actions_named("QueueStatus")
        b2.kill(signal.SIGTERM)
        # twistd re-raises the SIGTERM it handled once shut down cleanly.
        assert b2.proc.returncode in (0, -signal.SIGTERM), b2.log.read_text()
        assert "Server Shut Down." in b2.log.read_text()

        # Nothing lost, nothing twice: B's report and state are A's, and the replay's.
        assert _lines(report_b) == _lines(report_a) == whole.lines
        assert state_dump(redis_server, 2) == state_dump(redis_server, 1)
        assert_redis_is(redis_server, whole.center, db=2)
        assert "restored" in b2.log.read_text()
    finally:
        await stop_all(procs, ports)
