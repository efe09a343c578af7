"""Loading the recorded Asterisk traces and checking the service's conclusions
against what Asterisk itself counted (``*.expected.json``)."""

from __future__ import annotations

import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from support.traces import TRACES
from twisted.internet.task import Clock

from callcenter.ami.message import Message, Splitter, parse_message
from callcenter.center import Callcenter, Changes
from callcenter.kpi import BusinessDay
from callcenter.model import ABANDON, AVAIL, HANGUP, INCALL, LOGGEDIN, PAUSED, QUEUED

UTC = ZoneInfo("UTC")
# Scenario traces: a recording connection that saw every event from an empty PBX.
# Those under queue-entries/ have one expected row per queue entry (a caller who
# times out into, or is transferred to, a second queue has two).
EVENT_TRACES = sorted(
    str(p.relative_to(TRACES))[: -len(".ami")]
    for p in [*TRACES.glob("*.ami"), *TRACES.glob("queue-entries/*.ami")]
    if not p.name.endswith((".final-status.ami", ".setup.ami")) and p.name != "startup-status.ami"
)


@dataclass
class Trace:
    name: str
    data: bytes
    idx: list[dict[str, Any]]
    expected: dict[str, Any]

    def message_bytes(self, i: dict[str, Any]) -> bytes:
        return self.data[i["off"] : i["off"] + i["len"]]

    def messages(self) -> list[tuple[float, Message]]:
        """(receive time, message) for everything after the banner and login."""
        out = []
        for i in self.idx:
            if i["kind"] == "Banner" or (i["kind"] == "Response" and i["n"] == 1):
                continue
            block = self.message_bytes(i).replace(b"\r", b"").strip(b"\n")
            out.append((i["t"], parse_message(block)))
        return out

    @property
    def start(self) -> float:
        return self.idx[0]["t"]

    @property
    def end(self) -> float:
        return self.idx[-1]["t"]


def load(name: str) -> Trace:
    base = TRACES / name
    data = (TRACES / f"{name}.ami").read_bytes()
    idx = [json.loads(line) for line in (TRACES / f"{name}.ami.idx.jsonl").read_text().splitlines()]
    expected_name = name[: -len(".setup")] if name.endswith(".setup") else name
    expected = json.loads((TRACES / f"{expected_name}.expected.json").read_text())
    assert base.with_suffix(".ami").exists()
    return Trace(name, data, idx, expected)


def final_status_items(name: str) -> list[Message]:
    """The list items of a recorded QueueStatus answer (``*.final-status.ami``)."""
    data = (TRACES / f"{name}.final-status.ami").read_bytes()
    msgs = [parse_message(b) for b in Splitter(expect_banner=False).feed(data)]
    return [m for m in msgs if m.event]


@dataclass
class Outcome:
    """What the service concluded: the comparable part of its state."""

    clock: Clock
    center: Callcenter
    lines: list[str] = field(default_factory=list)
    changes: int = 0

    def record(self, ch: Changes) -> None:
        self.changes += 1
        self.lines.extend(t.line(UTC) for t in ch.transitions)

    def summary(self) -> dict[str, Any]:
        return {"snapshot": self.center.snapshot(), "lines": list(self.lines)}


def new_center(start: float) -> Outcome:
    clock = Clock()
    clock.advance(start)
    center = Callcenter(clock, sla=10, business_day=BusinessDay((0, 0), UTC))
    out = Outcome(clock, center)
    center.subscribe(out.record)
    return out


class TimedDispatch:
    """Sets the center's Clock to each message's recorded receive time.

    Messages reach the center through the real AMI client; this maps each
    delivered message (by its exact headers) back to the time Asterisk sent
    it, so a nots trace's statuses begin when they really did.
    """

    def __init__(self, trace: Trace, out: Outcome) -> None:
        self._times: dict[tuple, deque[float]] = defaultdict(deque)
        for t, m in trace.messages():
            self._times[tuple(m.headers)].append(t)
        self.out = out

    def __call__(self, msg: Message) -> None:
        times = self._times.get(tuple(msg.headers))
        if times:
            t = times.popleft()
            clock = self.out.clock
            if t > clock.seconds():
                clock.advance(t - clock.seconds())
        Callcenter.handle_event(self.out.center, msg)  # the class's, not a test's wrapper


def replay_direct(trace: Trace) -> Outcome:
    out = new_center(trace.start)
    for t, msg in trace.messages():
        if t > out.clock.seconds():
            out.clock.advance(t - out.clock.seconds())
        out.center.handle_event(msg)
    out.clock.advance(10)  # let any grace timer run
    return out


def _mean(values: list[int]) -> int:
    return int(sum(values) / len(values) + 0.5) if values else 0


def check(trace: Trace, out: Outcome) -> None:
    """Assert the service's final state, KPIs and report equal Asterisk's own account."""
    exp = trace.expected
    if exp.get("callers_format") == "queue-entries":
        check_queue_entries(trace, out)
        return
    stats = out.center.stats()
    counts = exp["driver_counts"]
    assert stats["calls_received"] == counts["offered"]
    assert stats["calls_answered"] == counts["answered"]
    assert stats["calls_abandoned"] == counts["abandoned"]
    callers = [c for c in exp["callers"] if c.get("joined")]
    answered = [c for c in callers if c["outcome"] == "answered"]
    abandoned = [c for c in callers if c["outcome"] == "abandoned"]
    completed = [c for c in answered if c.get("talktime_s") is not None]
    assert stats["average_queue_time"] == _mean([c["holdtime_s"] for c in answered])
    assert stats["average_abandoned_time"] == _mean([c["holdtime_s"] for c in abandoned])
    assert stats["average_handle_time"] == _mean([c["talktime_s"] for c in completed])
    final = exp["asterisk_queuestatus_final"]
    if int(final["Completed"]) == len(answered):
        # Asterisk counts service level over completed calls; equal once all ended.
        assert stats["sla"] == float(final["ServicelevelPerf"])
        assert stats["sla_with_abandoned"] == float(final["ServicelevelPerf2"])
    per_queue = stats["queues"]
    for queue, qc in exp.get("driver_counts_by_queue", {}).items():
        if qc["offered"]:
            assert per_queue[queue]["calls_received"] == qc["offered"]
            assert per_queue[queue]["calls_answered"] == qc["answered"]
            assert per_queue[queue]["calls_abandoned"] == qc["abandoned"]

    # Report: one QUEUED line per queued call with Asterisk's hold seconds, one
    # INCALL line per finished call with its talk seconds; nothing twice.
    rows = [line.rstrip("\n").split(";") for line in out.lines]
    assert len(rows) == len(set(map(tuple, rows))), "duplicated report line"
    for c in callers:
        # Older recordings name the caller only by number.
        if "uniqueid" in c:
            mine = [r for r in rows if r[1] == "CALL" and r[6] == c["uniqueid"]]
        else:
            mine = [r for r in rows if r[1] == "CALL" and r[2] == c["cid"]]
        queued = [r for r in mine if r[3] == QUEUED]
        incall = [r for r in mine if r[3] == INCALL]
        if c["outcome"] in ("answered", "abandoned"):
            assert [int(r[4]) for r in queued] == [c["holdtime_s"]], (c["cid"], mine)
            assert all(r[2] == c["cid"] and r[5] == c.get("queue", exp["queue"]) for r in mine)
        if c.get("talktime_s") is not None:
            assert [int(r[4]) for r in incall] == [c["talktime_s"]], (c["cid"], mine)

    # Final agents as Asterisk's QueueStatus shows them.
    members = exp["asterisk_members_final"]
    agents = {a.agentid: a for a in out.center.agents.values()}
    assert sorted(agents) == sorted({m["Name"] for m in members})
    for m in members:
        a = agents[m["Name"]]
        assert a.interface == m["Location"], (a, m)
        if m["InCall"] == "1":
            assert a.status == INCALL
        elif m["Paused"] == "1":
            assert a.status in (PAUSED, LOGGEDIN)
            # Compared ignoring case: a configured reason is shown in its configured
            # spelling (--pause-reasons, default "Lunch" for the phone's "lunch").
            assert a.pause_reason().casefold() == m["PausedReason"].casefold()
            if m["PausedReason"]:
                assert a.status == PAUSED
                assert a.to_json()["reason"].casefold() == m["PausedReason"].casefold()
        else:
            assert a.status == AVAIL
    # Final calls: exactly Asterisk's waiting entries plus connected callers.
    waiting = {e["Uniqueid"] for e in exp["asterisk_entries_final"]}
    live = {cid for cid, c in out.center.calls.items() if c.status == QUEUED}
    assert live == waiting
    in_call = sum(1 for m in members if m["InCall"] == "1")
    assert len(out.center.connections) == in_call
    for c in callers:
        if c["outcome"] == "answered" and c.get("talktime_s") is not None:
            assert c["cid"] not in {call.callerid for call in out.center.calls.values()}
    assert stats["calls_waiting"] == len(waiting)
    assert stats["connections_online"] == in_call


def _entry_figures(rows: list[dict[str, Any]], sla: int) -> dict[str, Any]:
    """The STATS a row set of queue entries implies, by DESIGN.md's definitions
    (a transferred-out entry was answered and completed; a timeout is neither
    answered nor abandoned)."""
    answered = [r for r in rows if r["outcome"] in ("answered", "transferred-out")]
    abandoned = [r for r in rows if r["outcome"] == "abandoned"]
    completed = [r for r in answered if r.get("talktime_s") is not None]
    in_sla = sum(1 for r in answered if r["holdtime_s"] <= sla)
    ab_sla = sum(1 for r in abandoned if r["holdtime_s"] <= sla)

    def pct(part: int, whole: int) -> float:
        return round(100.0 * part / whole, 2) if whole else 0.0

    return {
        "calls_received": len(rows),
        "calls_answered": len(answered),
        "calls_abandoned": len(abandoned),
        "calls_timeout": sum(1 for r in rows if r["outcome"] == "timeout"),
        "average_queue_time": _mean([r["holdtime_s"] for r in answered]),
        "average_abandoned_time": _mean([r["holdtime_s"] for r in abandoned]),
        "average_handle_time": _mean([r["talktime_s"] for r in completed]),
        "sla": pct(in_sla, len(answered)),
        "sla_with_abandoned": pct(in_sla + ab_sla, len(answered) + len(abandoned)),
        "abandon_rate": pct(len(abandoned), len(rows)),
    }


def check_queue_entries(trace: Trace, out: Outcome, sla: int = 10) -> None:
    """The newer expected.json: one row per queue entry, from Asterisk's queue_log."""
    exp = trace.expected
    rows = [r for r in exp["callers"] if r.get("joined")]
    stats = out.center.stats()
    counts = exp["driver_counts"]
    assert stats["calls_received"] == counts["queue_entries"]
    assert stats["calls_answered"] == counts["answered"]
    assert stats["calls_abandoned"] == counts["abandoned"]
    assert stats["calls_timeout"] == counts["timeout"]
    want = _entry_figures(rows, sla)
    assert {k: stats[k] for k in want} == want
    for queue, qc in exp["driver_counts_by_queue"].items():
        mine = [r for r in rows if r["queue"] == queue]
        assert qc["queue_entries"] == len(mine)  # the fixture agrees with itself
        got = stats["queues"][queue]
        wantq = _entry_figures(mine, sla)
        assert {k: got[k] for k in wantq} == wantq, queue
        # Asterisk's own Completed counts answered entries that ended there.
        params = exp["asterisk_queueparams_final_by_queue"][queue]
        assert int(params["Completed"]) == qc["answered"]

    # Report: per queue entry, one QUEUED line (its wait, in its queue) and, when
    # answered, one INCALL line with the talk seconds; nothing twice.
    lines = [line.rstrip("\n").split(";") for line in out.lines]
    assert len(lines) == len(set(map(tuple, lines))), "duplicated report line"
    for uid in {r["uniqueid"] for r in rows}:
        entries = sorted((r for r in rows if r["uniqueid"] == uid), key=lambda r: r["queue_entry"])
        mine = [x for x in lines if x[1] == "CALL" and x[6] == uid]
        queued = [(x[5], int(x[4])) for x in mine if x[3] == QUEUED]
        assert queued == [(r["queue"], r["holdtime_s"]) for r in entries], (uid, mine)
        incall = [(x[5], int(x[4])) for x in mine if x[3] == INCALL]
        talked = [
            (r["queue"], r["talktime_s"])
            for r in entries
            if r["outcome"] in ("answered", "transferred-out") and r.get("talktime_s") is not None
        ]
        assert incall == talked, (uid, mine)
        assert all(x[2] == entries[0]["cid"] for x in mine)

    members = exp["asterisk_members_final"]
    agents = {a.agentid: a for a in out.center.agents.values()}
    assert sorted(agents) == sorted({m["Name"] for m in members})
    for m in members:
        assert agents[m["Name"]].interface == m["Location"]
        assert agents[m["Name"]].status == (INCALL if m["InCall"] == "1" else AVAIL)
    assert not out.center.calls and not out.center.connections
    assert stats["calls_waiting"] == len(exp["asterisk_entries_final"]) == 0


def ended_statuses(out: Outcome) -> set[str]:
    return {HANGUP, ABANDON}
