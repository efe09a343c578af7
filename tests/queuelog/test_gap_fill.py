"""Gaps in AMI filled from the queue_log, on every recorded trace with callers.

The service follows a trace (AMI events in-process, its ``.queue_log`` growing
beside it, a real Redis), is cut at several points — stopped and restarted,
or its AMI connection dropped — and misses the next N seconds of events
(N = 2, 5, 30).  When it is back, the queue log holds what Asterisk wrote up
to that second, the PBX's answer to QueueStatus/CoreShowChannels comes from
an independent model (tests/support/pbxstate.py), and the rest of the trace
follows over AMI.  The final KPIs, each call's hold/talk seconds and its
report lines must equal the trace's ``expected.json`` and an uninterrupted
run's: no call line lost, none doubled, IVR (NA) lines included, by the
rules of docs/reliability.md (``lines.py``: the one-second limit of lines
rebuilt from the queue log, and the estimates, which the service counts).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted

from callcenter.ami.message import Message
from tests.core import traces
from tests.store.support import Rig, assert_redis_is, trace_events
from tests.support.pbxstate import PbxState

from .lines import Gap, compare
from .support import QueueLogFile, Service

WITH_CALLERS = [n for n in traces.EVENT_TRACES if n != "login"]
GAPS = (2, 5, 30)
# The queue log as recorded, and as the shipped configuration writes it: the
# dialplan's CALLER lines, members by name (the recordings have neither:
# derived from their AMI events, support.py).
LOGS = pytest.mark.parametrize("shipped", [False, True], ids=["recorded-log", "shipped-config"])


def call_records(center) -> dict:
    return {k: c.to_record() for k, c in center.calls.items()}


def uninterrupted(events: list[tuple[float, Message]]) -> Rig:
    whole = Rig(events[0][0])
    whole.feed(events)
    whole.clock.advance(10)
    return whole


def feed(svc: Service, qlog: QueueLogFile, events: list[tuple[float, Message]]) -> None:
    for t, msg in events:
        qlog.upto(t)
        if t > svc.clock.seconds():
            svc.clock.advance(t - svc.clock.seconds())
        svc.center.handle_event(msg)


def event_time(e: tuple[float, Message]) -> float:
    """When Asterisk sent it (its Timestamp), else when it was received."""
    stamp = e[1].get("Timestamp")
    return float(stamp) if stamp else e[0]


def back_at(events: list[tuple[float, Message]], cut: int, gap: int) -> tuple[float, int, int]:
    """The service is back at ``now``, a whole second ``gap`` after the cut.

    Returns ``now`` and two event counts: the PBX had sent ``k`` events
    before ``now`` (its QueueStatus answer is that state); those up to ``h``
    (the rest of that second) arrive while the catch-up reads the file, and
    the queue log holds every line stamped up to that second."""
    now = float(int(event_time(events[cut - 1])) + gap)
    k = cut
    while k < len(events) and event_time(events[k]) < now:
        k += 1
    h = k
    while h < len(events) and event_time(events[h]) < now + 1:
        h += 1
    return now, k, h


def come_back(svc: Service, qlog: QueueLogFile, events: list[tuple[float, Message]], now: float,
              k: int, h: int) -> None:
    """AMI logs in at ``now``: the catch-up starts, the resync asks for the
    PBX's state, that second's events arrive (held back), the answer comes
    (the state after them), and the catch-up reads the file — every line
    stamped up to that second — to its end, then lets it all through."""
    qlog.upto(now)
    if svc.clock.seconds() < now:
        svc.clock.advance(now - svc.clock.seconds())
    svc.catchup.on_login()
    svc.center.resync()
    for t, msg in events[k:h]:
        svc.clock.advance(max(0.0, t - svc.clock.seconds()))
        svc.center.handle_event(msg)
    svc.ami.answer(*PbxState().feed(events[:h]).answers())
    svc.settle()


async def run_until(name: str, events: list[tuple[float, Message]], cut: int, url: str, prefix: str,
                    path: Path, shipped: bool) -> tuple[Service, QueueLogFile]:
    """A service started with the trace (empty PBX, empty Redis), fed ``cut`` events."""
    qlog = QueueLogFile(name, path, shipped)
    svc = Service(events[0][0], url, prefix, path)
    qlog.upto(events[0][0])
    await svc.start()
    svc.login([], [])
    feed(svc, qlog, events[:cut])
    return svc, qlog


def cut_points(events: list[tuple[float, Message]]) -> list[int]:
    """Event counts to stop after: spread over the trace, past its set-up."""
    n = len(events)
    return sorted({max(3, n * k // 5) for k in (1, 2, 3, 4)})


def check_equal(name: str, where: str, whole: Rig, svc: Service, lines: list[str], gap: Gap) -> None:
    bad, estimated = compare(lines, whole.lines, gap)
    assert not bad, (where, "\n".join(bad))
    # The service counted (and logged) exactly the lines the rules call estimated.
    assert svc.catchup.estimated_lines in estimated, (where, svc.catchup.estimated_lines, estimated)
    assert svc.center.book.to_record() == whole.center.book.to_record(), where
    assert call_records(svc.center) == call_records(whole.center), where
    outcome = traces.Outcome(svc.clock, svc.center, lines)
    traces.check(traces.load(name), outcome)


@LOGS
@pytest.mark.parametrize("name", WITH_CALLERS)
@pytest_twisted.ensureDeferred
async def test_restart_after_a_gap_rebuilds_it_from_the_queue_log(redis_server, tmp_path: Path, name,
                                                                  shipped):
    events = trace_events(name)
    whole = uninterrupted(events)
    n = 0
    for cut in cut_points(events):
        for gap in GAPS:
            n += 1
            prefix, path = f"g{n}:", tmp_path / f"queue_log.{n}"
            first, qlog = await run_until(name, events, cut, redis_server.url, prefix, path, shipped)
            await first.stop()

            # Down for `gap` seconds: the PBX goes on, Asterisk writes its log.
            now, k, h = back_at(events, cut, gap)
            second = Service(max(now, first.clock.seconds()), redis_server.url, prefix, path)
            await second.start()
            come_back(second, qlog, events, now, k, h)
            feed(second, qlog, events[h:])
            second.clock.advance(10)
            await second.store.flush()

            where = f"{name} cut={cut} gap={gap}"
            check_equal(name, where, whole, second, first.rig.lines + second.rig.lines,
                        Gap.of(events, cut, k, now, log_callers=shipped))
            assert_redis_is(redis_server, second.center, prefix)
            await second.stop()


@LOGS
@pytest.mark.parametrize("name", WITH_CALLERS)
@pytest_twisted.ensureDeferred
async def test_an_ami_drop_is_filled_from_the_queue_log(redis_server, tmp_path: Path, name, shipped):
    events = trace_events(name)
    whole = uninterrupted(events)
    for n, (cut, gap) in enumerate((c, g) for c in cut_points(events)[1:3] for g in GAPS):
        prefix, path = f"d{n}:", tmp_path / f"queue_log.{n}"
        svc, qlog = await run_until(name, events, cut, redis_server.url, prefix, path, shipped)
        svc.catchup.on_disconnect()  # the AMI client's disconnect hook
        now, k, h = back_at(events, cut, gap)
        for t in range(int(svc.clock.seconds()) + 1, int(now)):  # read as it grows meanwhile
            qlog.upto(t)
            svc.clock.advance(t - svc.clock.seconds())
        come_back(svc, qlog, events, now, k, h)
        feed(svc, qlog, events[h:])
        svc.clock.advance(10)
        await svc.store.flush()
        check_equal(name, f"{name} drop cut={cut} gap={gap}", whole, svc, svc.rig.lines,
                    Gap.of(events, cut, k, now, log_callers=shipped))
        assert_redis_is(redis_server, svc.center, prefix)
        await svc.stop()


@LOGS
@pytest.mark.parametrize("name", ["answered", "queue-entries/transfer-small"])
@pytest_twisted.ensureDeferred
async def test_a_first_start_mid_day_rebuilds_the_day_from_the_queue_log(redis_server, tmp_path: Path, name,
                                                                          shipped):
    """Installed (or replaced) at noon: nothing in Redis, the queue log holds the
    day so far.  Today's figures, and every report line of calls and agents,
    are rebuilt from the start of the business day."""
    events = trace_events(name)
    whole = uninterrupted(events)
    cut = len(events) * 3 // 5
    now, k, h = back_at(events, cut, 1)
    qlog = QueueLogFile(name, tmp_path / "queue_log", shipped)
    svc = Service(now, redis_server.url, "m:", qlog.path)
    await svc.start()
    come_back(svc, qlog, events, now, k, h)
    assert svc.center.book.total().received > 0  # not a day started at zero
    feed(svc, qlog, events[h:])
    svc.clock.advance(10)
    await svc.store.flush()
    # Nothing reached it before: the whole day so far is its gap.
    check_equal(name, f"{name} first start", whole, svc, svc.rig.lines, Gap.of(events, 0, k, now, log_callers=shipped))
    assert_redis_is(redis_server, svc.center, "m:")
    await svc.stop()
