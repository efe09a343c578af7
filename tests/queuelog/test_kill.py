"""A real ``twistd callcenter --queue-log`` SIGKILLed mid-trace, down while the
PBX goes on, started again: the queue log fills the gap.

Over loopback TCP (the fake Asterisk of tests/support) with a real Redis:
run 1 follows the trace to a cut where calls are queued and connected while
the test writes the trace's ``.queue_log`` beside it, as Asterisk would;
SIGKILL; the PBX goes on for 5 s (its events never reach the service, its
queue log lines do); run 2 gets the PBX's state at that moment from an
independent model (tests/support/pbxstate.py) and then the rest of the
trace.  Every report line (calls' IVR ones included, agents') and the day's counters
in Redis equal an uninterrupted in-process run's (which the other tests
check against expected.json), by the rules of ``lines.py``; the estimated
lines are those the service's log counts.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest_twisted

from tests.store.support import Rig, busiest_cut, parse_block, trace_blocks, wait_for
from tests.store.test_kill import PBX, SECRET, Service, _lines, _serve, _shift, shifted, stop_all
from tests.support.pbxstate import PbxState
from tests.support.traces import TRACES

from .lines import Gap, call_lines, compare
from .test_gap_fill import event_time

GAP = 5


def queue_log_lines(name: str, shift: int) -> list[tuple[int, bytes]]:
    out = []
    for line in (TRACES / f"{name}.queue_log").read_bytes().splitlines(keepends=True):
        ts, rest = line.split(b"|", 1)
        out.append((int(ts) + shift, b"%d|%s" % (int(ts) + shift, rest)))
    return out


def estimated_in_log(text: str) -> int:
    """The estimated lines the service's catch-up log lines count."""
    n = sum(int(m) for m in re.findall(r"(\d+) with estimated seconds", text))
    return n + sum(int(m) for m in re.findall(r"(\d+) IVR \(NA\) lines ended at the reconcile", text))


def day_record(redis, db: int, day: str) -> dict | None:
    raw = redis.command("GET", f"callcenter:day:{day}", db=db)
    return json.loads(raw)["record"] if raw else None


@pytest_twisted.ensureDeferred
async def test_sigkill_then_a_gap_is_filled_from_the_queue_log(tmp_path: Path, redis_server):
    name = "answered"
    raw = trace_blocks(name)
    shift = _shift(raw[0][0], raw[-1][0])
    blocks = [(t + shift, shifted(b, shift)) for t, b in raw]
    events = [(t, parse_block(b)) for t, b in blocks]
    qlines = queue_log_lines(name, shift)
    cut = busiest_cut(events)
    whole = Rig(events[0][0])
    whole.feed(events)
    whole.clock.advance(10)
    at_cut = Rig(events[0][0])
    at_cut.feed(events[:cut])
    assert at_cut.center.connections and any(c.status == "QUEUED" for c in at_cut.center.calls.values())

    qlog, report = tmp_path / "queue_log", tmp_path / "report.csv"
    qlog.write_bytes(b"")
    url = redis_server.url[:-1] + "3"
    procs: list[Service] = []
    ports = []
    extra = ("--queue-log", str(qlog), "--queue-log-poll", "0.2")
    try:
        ports.append(await _serve(PBX(SECRET, [b for _, b in blocks[:cut]])))
        one = Service(tmp_path, "one", ports[-1].getHost().port, url, report, extra)
        procs.append(one)
        await wait_for(lambda: len(_lines(report)) == len(at_cut.lines), timeout=60,
                       what=f"run 1 to reach the cut ({one.log})")
        # What Asterisk wrote meanwhile, read by the service as it follows the file.
        last = int(event_time(events[cut - 1]))
        qlog.write_bytes(b"".join(x for ts, x in qlines if ts <= last))
        await wait_for(lambda: day_record(redis_server, 3, whole.center.book.day) is not None,
                       timeout=30, what="run 1's counters in Redis")
        one.kill(signal.SIGKILL)
        assert one.proc.returncode == -signal.SIGKILL

        # Down for GAP seconds: the PBX goes on and logs it.
        now = last + GAP
        k = cut
        while k < len(events) and event_time(events[k]) < now:
            k += 1
        assert k > cut  # something really was missed
        with qlog.open("ab") as f:
            f.write(b"".join(x for ts, x in qlines if last < ts < now))
        items, channels = PbxState().feed(events[:k]).answers()
        ports.append(await _serve(PBX(SECRET, [b for _, b in blocks[k:]], items, channels)))
        two = Service(tmp_path, "two", ports[-1].getHost().port, url, report, extra)
        procs.append(two)
        await wait_for(lambda: "queue log catch-up:" in two.log.read_text(), timeout=60,
                       what=f"run 2's catch-up ({two.log})")
        with qlog.open("ab") as f:  # the rest, as Asterisk goes on
            f.write(b"".join(x for ts, x in qlines if ts >= now))
        gap = Gap.of(events, cut, k, now)
        want = call_lines(whole.lines)
        await wait_for(
            lambda: len(call_lines(_lines(report))) >= len(want)
            and day_record(redis_server, 3, whole.center.book.day) == whole.center.book.to_record(),
            timeout=60, what=f"run 2 to finish ({two.log})",
        )
        two.kill(signal.SIGTERM)
        got = _lines(report)
        bad, estimated = compare(got, whole.lines, gap)
        assert not bad, "\n".join(bad)
        assert len(got) == len(set(got))  # none doubled
        log = two.log.read_text()
        assert "restored" in log
        assert estimated_in_log(log) in estimated, (estimated_in_log(log), estimated)
    finally:
        await stop_all(procs, ports)
