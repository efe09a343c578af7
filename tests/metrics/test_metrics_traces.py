"""/metrics after replaying the recorded Asterisk traces: the counters and
histograms equal what the trace's expected.json says Asterisk's queue did,
the output parses with prometheus_client's own parser, and no caller id or
call id from the trace appears in it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from core.traces import EVENT_TRACES, Trace, load, new_center
from prometheus_client.parser import text_string_to_metric_families
from twisted.web.test.requesthelper import DummyRequest

from callcenter.metrics.service import MetricsPage, make_registry


def scrape(registry: Any) -> str:
    request = DummyRequest([b"metrics"])
    body = MetricsPage(registry).render_GET(request)
    assert request.responseHeaders.getRawHeaders(b"content-type")[0].startswith(b"text/plain; version=0.0.4")
    return body.decode("utf-8")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def replay_with_metrics(trace: Trace) -> tuple[Any, str]:
    out = new_center(trace.start)
    registry, figures, _links = make_registry(out.center, sla_target=80.0)
    figures.start()
    for t, msg in trace.messages():
        if t > out.clock.seconds():
            out.clock.advance(t - out.clock.seconds())
        out.center.handle_event(msg)
    out.clock.advance(10)  # let any grace timer run
    return out, scrape(registry)


def expected_by_queue(trace: Trace) -> dict[str, dict[str, Any]]:
    """Per queue: the counts and the hold/talk values expected.json lists."""
    exp = trace.expected
    rows = [r for r in exp["callers"] if r.get("joined")]
    per: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "received": 0, "answered": 0, "abandoned": 0, "timeout": 0,
        "hold_answered": [], "hold_abandoned": [], "talk": [],
    })
    for r in rows:
        q = per[r.get("queue", exp["queue"])]
        q["received"] += 1
        outcome = r["outcome"]
        if outcome in ("answered", "transferred-out"):
            q["answered"] += 1
            q["hold_answered"].append(r["holdtime_s"])
            if r.get("talktime_s") is not None:
                q["talk"].append(r["talktime_s"])
        elif outcome == "abandoned":
            q["abandoned"] += 1
            q["hold_abandoned"].append(r["holdtime_s"])
        elif outcome == "timeout":
            q["timeout"] += 1
    if exp.get("callers_format") != "queue-entries":
        # The older format counts per queue in driver_counts_by_queue: check the rows agree.
        for queue, qc in exp.get("driver_counts_by_queue", {}).items():
            if qc["offered"]:
                assert per[queue]["received"] == qc["offered"]
                assert per[queue]["answered"] == qc["answered"]
                assert per[queue]["abandoned"] == qc["abandoned"]
    return dict(per)


@pytest.mark.parametrize("name", EVENT_TRACES)
def test_counters_equal_the_trace(name: str) -> None:
    trace = load(name)
    _out, text = replay_with_metrics(trace)
    got = samples(text)
    expected = expected_by_queue(trace)  # empty for a trace without callers (login)

    def value(metric: str, **labels: str) -> float:
        return got.get((metric, tuple(sorted(labels.items()))), 0.0)

    for queue, e in expected.items():
        assert value("callcenter_calls_received_total", queue=queue) == e["received"], queue
        for outcome in ("answered", "abandoned", "timeout"):
            assert value("callcenter_calls_total", queue=queue, outcome=outcome) == e[outcome], (queue, outcome)
        for outcome in ("answered", "abandoned"):
            holds = e["hold_" + outcome]
            assert value("callcenter_hold_seconds_count", queue=queue, outcome=outcome) == len(holds)
            assert value("callcenter_hold_seconds_sum", queue=queue, outcome=outcome) == sum(holds)
            for le in ("5.0", "10.0", "30.0"):
                assert value("callcenter_hold_seconds_bucket", queue=queue, outcome=outcome, le=le) == \
                    sum(1 for h in holds if h <= float(le))
        assert value("callcenter_talk_seconds_count", queue=queue) == len(e["talk"])
        assert value("callcenter_talk_seconds_sum", queue=queue) == sum(e["talk"])
        assert value("callcenter_calls_completed_total", queue=queue) == len(e["talk"])
        assert value("callcenter_calls_answered_in_sla_total", queue=queue) == \
            sum(1 for h in e["hold_answered"] if h <= 10)
    # Nothing counted in a queue the trace did not send callers to.
    counted = {dict(k[1])["queue"] for k, v in got.items() if k[0] == "callcenter_calls_received_total" and v}
    assert counted == {q for q, e in expected.items() if e["received"]}

    # No caller id, call id or channel of the trace in the output.
    for r in trace.expected["callers"]:
        for key in ("cid", "uniqueid", "channel"):
            if r.get(key):
                assert str(r[key]) not in text, (key, r[key])


def test_gauges_follow_the_live_state_and_counters_survive_the_day() -> None:
    trace = load("answered")
    out, text = replay_with_metrics(trace)
    got = samples(text)
    # The end of the trace: nobody waits; Asterisk's final QueueStatus names the members.
    members = [m for m in trace.expected["asterisk_members_final"] if m["Queue"] == "q-callcenter"]
    assert got[("callcenter_queue_calls_waiting", (("queue", "q-callcenter"),))] == 0
    assert got[("callcenter_queue_longest_wait_seconds", (("queue", "q-callcenter"),))] == 0
    in_queue = sum(v for k, v in got.items() if k[0] == "callcenter_queue_agents"
                   and dict(k[1])["queue"] == "q-callcenter")
    assert in_queue == len(members)
    assert got[("callcenter_queue_sla_ratio", (("queue", "q-callcenter"),))] == \
        float(trace.expected["asterisk_queuestatus_final"]["ServicelevelPerf"]) / 100
    assert got[("callcenter_queue_abandon_ratio", (("queue", "q-callcenter"),))] == 0.0
    assert got[("callcenter_sla_target_ratio", ())] == 0.8
    assert not any(k[0].startswith("callcenter_agent_") for k in got)  # only behind the flag


def test_agent_series_only_behind_the_flag_and_without_callers() -> None:
    trace = load("answered")
    out = new_center(trace.start)
    registry, figures, _ = make_registry(out.center, agent_series=True)
    figures.start()
    for t, msg in trace.messages():
        if t > out.clock.seconds():
            out.clock.advance(t - out.clock.seconds())
        out.center.handle_event(msg)
    got = samples(scrape(registry))
    agents = {dict(k[1])["agent"] for k in got if k[0] == "callcenter_agent_status"}
    assert agents == {m["Name"] for m in trace.expected["asterisk_members_final"]}


def test_queue_agents_count_each_members_status_in_every_queue() -> None:
    # Agents in several queues each, some paused in some of them, one in a
    # call: the gauge is the members' AGENT status per queue (as HELLO shows them).
    from core.test_center import Q, answered_call, ev

    out = new_center(1795665000.0)
    c = out.center
    queues = [Q, "q-b", "q-c"]
    for n in range(9):
        agent = str(2000 + n)
        for k, q in enumerate(queues[: 1 + n % 3]):
            c.handle_event(ev("QueueMemberAdded", 1795665000.0, Queue=q, MemberName=agent,
                              Interface=f"Local/{agent}@agent-connect", Paused="1" if (n + k) % 4 == 0 else "0",
                              PausedReason="Break" if (n + k) % 4 == 0 else "", InCall="0", Status="1"))
    for msg in answered_call("1795665010.1", "2005", 1795665010.0, hold=2, talk=500)[:4]:
        c.handle_event(msg)  # 2005 answers and stays in the call
    registry, figures, _ = make_registry(c)
    figures.start()
    got = samples(scrape(registry))
    model: dict[tuple[str, str], int] = defaultdict(int)
    for o in c.snapshot():
        if o["type"] == "AGENT":
            for q in o["queues"]:
                model[(q, o["status"])] += 1
    assert {s for _, s in model} >= {"AVAIL", "PAUSED", "INCALL"}  # the case covers them
    for q in queues:
        for status in ("LOGGEDIN", "AVAIL", "PAUSED", "INCALL"):
            key = ("callcenter_queue_agents", (("queue", q), ("status", status)))
            assert got[key] == model.get((q, status), 0), (q, status)
