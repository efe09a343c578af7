"""Without a queue log: Asterisk's QueueParams counters correct a gap (issue 14, item 3).

In process, on a fake clock: the service follows a trace, reconciling with the
PBX at the start (as after its AMI login); the stream is cut, the next N
seconds of events are never seen, and the reconcile after the gap gets the
PBX's truth at that time from the independent app_queue model
(tests/support/pbxstate.py, itself checked against the recorded QueueParams).
The day's *counts* (received, answered, ended unanswered per queue and in
total) must equal expected.json.  Seconds are estimates in this mode and are
not compared (hold/talk of a caller answered unseen: see pbx_counters.py).
"""

from __future__ import annotations

import pytest
from twisted.logger import Logger, LogLevel, globalLogPublisher

from callcenter.ami.message import Message
from callcenter.core.pbx_counters import Baseline
from callcenter.logthrottle import LogThrottle
from tests.core import traces

from .counters_gap import (
    GAPS,
    caller_traces,
    cut_times,
    expected_counts,
    expected_split,
    fresh_pbx,
    got_counts,
    got_split,
)
from .support import Rig, trace_events


def _run_with_gap(
    name: str, cut: float, gap: float, reset_at: float | None = None, rebase: bool = False
) -> Rig:
    events = trace_events(name)
    expected = traces.load(name).expected
    rig = Rig(events[0][0])
    pbx = fresh_pbx(expected)
    rig.center.reconcile(*pbx.answers())  # the AMI login's resync, before any caller
    seen = [(t, m) for t, m in events if t <= cut]
    rig.feed(seen)
    pbx.feed(seen)
    if rebase:
        pbx.now = max(pbx.now, cut)
        rig.center.reconcile(*pbx.answers())  # e.g. an earlier reconnect: a later baseline
    missed = [(t, m) for t, m in events if cut < t <= cut + gap]
    if reset_at is not None:
        pbx.feed([(t, m) for t, m in missed if t <= reset_at])
        pbx.reset_stats()
        pbx.feed([(t, m) for t, m in missed if t > reset_at])
    else:
        pbx.feed(missed)
    pbx.now = max(pbx.now, cut + gap)
    rig.clock.advance(max(0.0, cut + gap - rig.clock.seconds()))
    rig.center.reconcile(*pbx.answers())  # the reconnect's resync
    rig.feed([(t, m) for t, m in events if t > cut + gap])
    rig.clock.advance(10)  # let any grace timer run
    return rig


CASES = [(n, i, g) for n in caller_traces() for i in range(4) for g in GAPS]


@pytest.mark.parametrize(("name", "point", "gap"), CASES)
def test_gap_counts_equal_expected(name: str, point: int, gap: float) -> None:
    cut = cut_times(trace_events(name))[point]
    rig = _run_with_gap(name, cut, gap)
    stats = rig.center.stats()
    where = (name, cut, gap, rig.center.pbx_counters.last)
    assert got_counts(stats) == expected_counts(traces.load(name).expected), where
    # Abandoned vs timeout: exact where the PBX's answer tells (the caller alive
    # after the gap), else the documented rule (counted abandoned).
    assert got_split(stats) == expected_split(name, cut, gap), where


def _message_caller(name: str) -> tuple[float, float]:
    """The caller who timed out and was played a message (116): when its queue
    entry ended (expected.json's t_end) and when its channel hung up (the trace)."""
    row = next(
        r for r in traces.load(name).expected["callers"]
        if r.get("outcome") == "timeout" and not r.get("next_queue")
    )
    hangup = min(
        t for t, m in trace_events(name) if m.event == "Hangup" and m.get("Uniqueid") == row["uniqueid"]
    )
    return row["t_end"], hangup


@pytest.mark.parametrize(("after_hangup", "reset"), [(False, False), (True, False), (False, True)])
def test_a_vanished_caller_still_alive_timed_out(after_hangup: bool, reset: bool) -> None:
    """The gap holds a timeout's QueueCallerAbandon and QueueCallerLeave.  If the
    caller's channel is still alive at the reconcile (out of every queue, with no
    agent) it left without hanging up: a timeout, exactly.  Once it has hung up
    too, nothing in the PBX's answer tells that from an abandon: counted abandoned
    (the documented rule), and the sum is exact either way.  A counter reset in
    the gap (the rule without counters) does not make the living caller an
    abandon either."""
    name = "queue-entries/overflow-small"
    t_end, hangup = _message_caller(name)
    cut = t_end - 0.5
    # (Not within milliseconds of another caller's hang-up: a channel whose hang-up
    # is under way is still listed, a race docs/reliability.md names.)
    gap = (hangup + 0.25 if after_hangup else (t_end + hangup) / 2) - cut
    rig = _run_with_gap(name, cut, gap, reset_at=t_end + 0.1 if reset else None)
    stats = rig.center.stats()
    last = rig.center.pbx_counters.last
    assert last is not None and last.timeout == (0 if after_hangup else 1), last
    assert bool(last.warnings) == reset, last
    assert got_counts(stats) == expected_counts(traces.load(name).expected)
    assert got_split(stats) == expected_split(name, cut, gap)


def _warnings() -> tuple[list[str], object]:
    seen: list[str] = []

    def observer(event: dict) -> None:
        if event.get("log_level") is LogLevel.warn:
            seen.append(str(event.get("log_format", "")))

    globalLogPublisher.addObserver(observer)
    return seen, observer


def test_a_counter_reset_falls_back_to_the_old_rule_with_a_warning() -> None:
    """``queue reset stats`` during the gap: counters went down, so every vanished
    caller is counted abandoned (today's rule) and a warning names the reset."""
    name = "answered"
    events = trace_events(name)
    # A cut while callers wait (and after some calls ended, so the baseline taken
    # at the cut is above zero), so that some vanish during the gap.
    joins = [t for t, m in events if m.event == "QueueCallerJoin"]
    done = [t for t, m in events if m.event == "AgentComplete"]
    cut = max(joins[-1], done[0]) + 0.01
    ends = [t for t, m in events if m.event == "AgentComplete" and t > cut]
    gap = ends[-1] - cut + 0.5  # every caller's end falls in the gap
    seen, observer = _warnings()
    try:
        rig = _run_with_gap(name, cut, gap, reset_at=ends[-1] + 0.1, rebase=True)
    finally:
        globalLogPublisher.removeObserver(observer)
    last = rig.center.pbx_counters.last
    assert last is not None and last.old_rule > 0 and last.answered == 0
    assert any("went down" in w for w in seen), seen
    assert any("rule without counters" in w for w in seen), seen
    # Today's rule: the vanished callers are abandoned, so answered falls short.
    stats = rig.center.stats()
    assert stats["calls_abandoned"] == last.old_rule
    assert stats["calls_answered"] == traces.load(name).expected["driver_counts"]["answered"] - last.old_rule


def _params(queue: str, completed: str, abandoned: str, **extra: str) -> Message:
    pairs = [("Event", "QueueParams"), ("Queue", queue), ("Calls", extra.get("calls", "0")),
             ("Holdtime", extra.get("hold", "3")), ("TalkTime", extra.get("talk", "5")),
             ("Completed", completed), ("Abandoned", abandoned)]
    return Message.of(*[(k, v) for k, v in pairs if v is not None])


@pytest.mark.parametrize(
    ("completed", "abandoned"),
    [("-1", "0"), ("1_000", "0"), ("9999999999", "0"), ("٣", "0"), (None, "0"), ("0", ""), ("x", "1")],
)
def test_bad_counter_values_are_ignored_with_a_log(completed, abandoned, monkeypatch) -> None:
    """A QueueParams item with a missing or absurd counter is dropped with a log
    line: that queue has no counters this time (the old rule), nothing breaks."""
    from callcenter.ami import events
    from callcenter.ami.events import pbx_snapshot

    monkeypatch.setattr(events, "log", LogThrottle(Logger()))  # no other test's burst

    logged: list[str] = []

    def observer(event: dict) -> None:
        logged.append(str(event.get("log_format", "")) + str(event.get("err", "")))

    globalLogPublisher.addObserver(observer)
    try:
        snap = pbx_snapshot([_params("q1", completed, abandoned), _params("q2", "4", "1")])
    finally:
        globalLogPublisher.removeObserver(observer)
    assert set(snap.queues) == {"q2"}
    assert snap.queues["q2"].completed == 4 and snap.queues["q2"].abandoned == 1
    assert any("QueueStatus item" in line for line in logged), logged


def test_bad_means_are_ignored_but_the_counts_kept() -> None:
    from callcenter.ami.events import pbx_snapshot

    snap = pbx_snapshot([_params("q1", "2", "1", hold="1_0", talk="99999999")])
    q = snap.queues["q1"]
    assert (q.completed, q.abandoned, q.holdtime, q.talktime) == (2, 1, None, None)


@pytest.mark.parametrize(
    "record",
    [
        None, [], {}, {"asterisk": {}}, {"asterisk": {"q": [1, 2]}, "ours": {}, "x": 1},
        {"asterisk": {"q": [1]}, "ours": {}}, {"asterisk": {"q": [-1, 0]}, "ours": {}},
        {"asterisk": {"q": [1.5, 0]}, "ours": {}}, {"asterisk": {"q": [True, 0]}, "ours": {}},
        {"asterisk": {"q": [2**40, 0]}, "ours": {}}, {"asterisk": {"": [1, 0]}, "ours": {}},
        {"asterisk": {}, "ours": {"2026-01-01": {"q": ["1", 0]}}},
    ],
)
def test_a_stored_baseline_that_is_not_ours_is_refused(record) -> None:
    with pytest.raises(ValueError):
        Baseline.from_record(record)


def test_a_stored_baseline_round_trips() -> None:
    b = Baseline({"q": (3, 1)}, {"2026-01-01": {"q": (2, 1)}})
    assert Baseline.from_record(b.to_record()) == b
