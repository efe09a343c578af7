"""The simulator against the real Asterisk 22 captures in ../shared/ami-traces.

Each scenario's driver log is replayed into the simulator over AMI, at the
driver's own times on a Clock: one session records every event (as the rig's
recording connection did), another sends the driver's actions.  Then, per
entity (channel, bridge, agent, session), the simulator's events must have
the real trace's names, in the same order, with the same header names; events
whose position Asterisk itself varies (gotcha 8) are compared as multisets.
The driver's own responses must have Asterisk's structure, and the final
QueueStatus Asterisk's values.  ``startup-status.ami`` (a CTI connecting to a
busy PBX) is compared response by response.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from callcenter.ami import names
from callcenter.ami.message import Message
from callcenter.simulator.render import MODELED_EVENTS

from .tracekit import (
    TRACES,
    Session,
    advance_to,
    compare,
    first_time,
    group,
    header_names,
    label,
    login,
    make_pbx,
    read_ami,
    read_driver_log,
)

SCENARIOS = ["login", "answered", "abandon", "ringnoanswer", "pause-during-call",
             "answered-nots", "abandon-nots", "startup-status"]


def _recording(name: str) -> str:
    return "startup-status.setup" if name == "startup-status" else name


def replay(name: str, cti_at: float | None = None):
    """Run a scenario; returns (recorder, per-step sim replies, steps, cti session or None)."""
    steps = read_driver_log(TRACES / f"{name}.driver.log")
    start = first_time(TRACES / f"{_recording(name)}.ami.idx.jsonl")
    pbx, clock = make_pbx(start=start, timestampevents=not name.endswith("-nots"))
    recorder = Session(pbx)
    login(recorder)
    driver = Session(pbx)
    replies: list[list[Message]] = []
    cti = None
    for step in steps:
        if cti_at is not None and cti is None and step.t > cti_at:
            advance_to(clock, cti_at)
            cti = cti_session(pbx, clock)
        advance_to(clock, step.t)
        driver.send(step.send)
        replies.append(driver.read())
    advance_to(clock, steps[-1].t + 5)
    recorder.read()
    return recorder, replies, steps, cti


def cti_session(pbx, clock) -> dict[str, list[Message]]:
    """What startup-status.ami's CTI did: log in, then QueueStatus, QueueSummary,
    CoreShowChannels (at the times its responses arrived)."""
    idx = [json.loads(line) for line in (TRACES / "startup-status.ami.idx.jsonl").open()]
    when = {r["ActionID"]: r["t"] for r in idx if r["kind"] == "Response"}
    s = Session(pbx)
    out = {"Login": [login(s, "cti-1")]}
    for action, aid in (("QueueStatus", "cti-2"), ("QueueSummary", "cti-3"),
                        ("CoreShowChannels", "cti-4")):
        advance_to(clock, when[aid])
        s.action(action, ActionID=aid)
        out[action] = [m for m in s.read() if m.action_id == aid]
    return out


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario(request):
    name = request.param
    cti_at = None
    if name == "startup-status":
        cti_at = first_time(TRACES / "startup-status.ami.idx.jsonl")
    recorder, replies, steps, cti = replay(name, cti_at)
    return name, recorder, replies, steps, cti


def test_modeled_events_cover_what_the_service_uses():
    assert names.EVENTS <= MODELED_EVENTS
    assert "UserEvent" in MODELED_EVENTS


def test_every_trace_is_covered():
    scenarios = {p.name.removesuffix(".driver.log") for p in TRACES.glob("*.driver.log")}
    assert scenarios == set(SCENARIOS)


def test_per_entity_sequences_match_asterisk(scenario):
    name, recorder, _replies, _steps, _cti = scenario
    real = group(read_ami(TRACES / f"{_recording(name)}.ami"))
    sim = group(recorder.messages)
    # The comparison is not vacuous: every modeled event of the trace is compared.
    assert sum(map(len, real.seqs.values())) > 60 and not real.unassigned
    assert compare(real, sim) == []


def test_every_app_queue_event_of_the_traces_is_reproduced():
    seen_real, seen_sim = set(), set()
    for name in SCENARIOS:
        recorder, *_ = replay(name)
        seen_sim |= {label(m) for m in recorder.messages if m.kind == "Event"}
        seen_real |= {label(m) for m in read_ami(TRACES / f"{_recording(name)}.ami")
                      if m.name in MODELED_EVENTS}
    queue_labels = {lab for lab in seen_real if lab.split("[")[0] in names.QUEUE_EVENTS}
    assert {"AgentRingNoAnswer", "QueueCallerAbandon", "QueueMemberRemoved[P0]",
            "UserEvent(LOGGEDOUT)", "AgentComplete[caller]"} <= seen_real
    assert queue_labels <= seen_sim
    assert seen_real <= seen_sim


def test_driver_responses_have_asterisk_structure(scenario):
    _name, _recorder, replies, steps, _cti = scenario
    item_shapes: dict[tuple[str, str], set] = defaultdict(set)
    sim_shapes: dict[tuple[str, str], set] = defaultdict(set)
    for step, got in zip(steps, replies, strict=True):
        action = step.action["Action"]
        real = step.replies
        assert got, f"no reply to {action}"
        r0, s0 = real[0], got[0]
        assert header_names(s0) == header_names(r0), action
        for key in ("Response", "Message", "EventList", "ActionID"):
            assert s0.get(key) == r0.get(key), (action, key)
        if real[-1].name.endswith("Complete"):
            assert got[-1].name == real[-1].name
            assert header_names(got[-1]) == header_names(real[-1])
            assert int(got[-1]["ListItems"]) == len(got) - 2
        for m in real[1:-1]:
            item_shapes[(action, m.name)].add(header_names(m))
        for m in got[1:-1]:
            sim_shapes[(action, m.name)].add(header_names(m))
    for key, shapes in sim_shapes.items():
        assert shapes <= item_shapes.get(key, shapes), key
    # Items the real PBX listed are listed by the simulator too (counts at one
    # instant may differ by a channel or two: timing is only close).
    assert set(item_shapes) <= set(sim_shapes)


def _status_values(replies: list[Message]) -> list[tuple]:
    keep = {"QueueParams": ("Queue", "Calls", "Completed", "Abandoned", "ServiceLevel",
                            "ServicelevelPerf", "ServicelevelPerf2", "Strategy"),
            "QueueMember": ("Queue", "Name", "Location", "CallsTaken", "InCall", "Status",
                            "Paused", "PausedReason", "Membership"),
            "QueueEntry": ("Queue", "Position", "CallerIDNum")}
    return [(m.name, *(m[k] for k in keep[m.name])) for m in replies if m.name in keep]


def test_final_queue_status_values(scenario):
    name, _recorder, replies, steps, _cti = scenario
    last = max(i for i, s in enumerate(steps) if s.action["Action"] == "QueueStatus")
    assert _status_values(replies[last]) == _status_values(steps[last].replies), name


def test_startup_status_snapshot_matches():
    _recorder, _replies, _steps, cti = replay(
        "startup-status", cti_at=first_time(TRACES / "startup-status.ami.idx.jsonl"))
    real = read_ami(TRACES / "startup-status.ami")
    by_id: dict[str, list[Message]] = defaultdict(list)
    for m in real:
        if m.action_id:
            by_id[m.action_id].append(m)
    for action, aid in (("QueueStatus", "cti-2"), ("QueueSummary", "cti-3"),
                        ("CoreShowChannels", "cti-4")):
        want, got = by_id[aid], cti[action]
        assert [m.name for m in got] == [m.name for m in want], action
        for w, g in zip(want, got, strict=True):
            assert header_names(g) == header_names(w), (action, w.name)
            assert "Privilege" not in g
    assert _status_values(cti["QueueStatus"]) == _status_values(by_id["cti-2"])
    summary = [tuple(m.get(k) for k in ("Queue", "LoggedIn", "Available", "Callers"))
               for m in cti["QueueSummary"]]
    assert summary == [tuple(m.get(k) for k in ("Queue", "LoggedIn", "Available", "Callers"))
                       for m in by_id["cti-3"]]

    def channels(msgs):
        out = {}
        for m in msgs:
            if m.name == "CoreShowChannel":
                key = (m["Channel"].rsplit("-", 1)[0], m["Channel"][-2:], m["CallerIDNum"])
                out[key] = (m["ChannelState"], m["Context"], m["Exten"], m["Priority"],
                            m["Application"], m["ApplicationData"].replace("300", "T"),
                            bool(m["BridgeId"]))
        return out

    real_ch, sim_ch = channels(by_id["cti-4"]), channels(cti["CoreShowChannels"])
    assert set(sim_ch) == set(real_ch)
    for key, (state, ctx, exten, prio, app, data, bridged) in real_ch.items():
        s_state, s_ctx, s_exten, s_prio, s_app, s_data, s_bridged = sim_ch[key]
        assert (s_state, s_ctx, s_exten, s_prio, s_app, s_bridged) == (
            state, ctx, exten, prio, app, bridged), key
        if app == "Queue" or data == "(Outgoing Line)":
            assert s_data == data, key
    assert cti["Login"][0]["Message"] == "Authentication accepted"


def test_comparison_catches_a_wrong_order():
    recorder, *_ = replay("abandon")
    real = group(read_ami(TRACES / "abandon.ami"))
    msgs = list(recorder.messages)
    i = next(i for i, m in enumerate(msgs) if m.name == "QueueCallerAbandon")
    msgs[i], msgs[i + 1] = msgs[i + 1], msgs[i]  # QueueCallerLeave before Abandon
    assert any("order differs" in p for p in compare(real, group(msgs)))
    msgs = [m for m in recorder.messages if m.name != "MusicOnHoldStop"]
    assert compare(real, group(msgs))
