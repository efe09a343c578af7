"""An agent's own pause time by reason today (the agent page's figures):
counted where a PAUSED status ends, from the events' own times, reset with
the business day, kept in Redis records and checked when read back."""

from __future__ import annotations

import json

import pytest

from callcenter.core.counting import MAX_PAUSE_REASONS, OTHER_REASONS, count_pause
from callcenter.store.records import BadRecord, parse_agent

from . import traces
from .test_center import answered_call, login, member

T0 = 1795665000.0  # 2026-11-27 03:50 UTC
MIDNIGHT = 1795737600.0  # 2026-11-28 00:00 UTC, the next business day


def pause(agent: str, ts: float, reason: str = "") -> object:
    return member("QueueMemberPause", agent, ts, paused="1", reason=reason)


def unpause(agent: str, ts: float) -> object:
    return member("QueueMemberPause", agent, ts, paused="0")


def agent_json(out: traces.Outcome, agentid: str) -> dict:
    return next(o for o in out.center.snapshot() if o.get("type") == "AGENT" and o["agentid"] == agentid)


def feed(out: traces.Outcome, *events: object) -> None:
    for e in events:
        out.clock.advance(max(0.0, float(e.get("Timestamp")) - out.clock.seconds()))  # type: ignore[attr-defined]
        out.center.handle_event(e)


def test_pause_time_by_reason_from_the_events_times() -> None:
    out = traces.new_center(T0)
    login(out.center, "1001", T0)  # the login's own pause is LOGGEDIN, not a pause
    feed(
        out,
        pause("1001", T0 + 100, "Lunch"), unpause("1001", T0 + 160),  # Lunch 60
        pause("1001", T0 + 200, "Break"),
        pause("1001", T0 + 230, "Coffee"),  # a new reason ends the Break: 30
        unpause("1001", T0 + 250),  # Coffee 20
        pause("1001", T0 + 300, "Lunch"), unpause("1001", T0 + 330.4),  # Lunch 30 (whole seconds)
        pause("1001", T0 + 340), unpause("1001", T0 + 345),  # no reason 5
    )
    assert agent_json(out, "1001")["pause_time"] == {"Lunch": 90, "Break": 30, "Coffee": 20, "": 5}


def test_a_pause_asked_during_a_call_counts_from_the_call_s_end() -> None:
    out = traces.new_center(T0)
    login(out.center, "1001", T0)
    call = answered_call("77", "1001", T0 + 10, hold=2, talk=30)  # connected 12, ends 42
    feed(out, *call[:4], pause("1001", T0 + 20, "After call work"))
    assert agent_json(out, "1001")["status"] == "INCALL"
    assert "pause_time" not in agent_json(out, "1001")  # nothing ended yet
    feed(out, call[4], unpause("1001", T0 + 50))  # PAUSED from 42 to 50
    agent = agent_json(out, "1001")
    assert agent["pause_time"] == {"After call work": 8}
    assert (agent["calls_taken"], agent["talk_time"]) == (1, 30)


def test_pause_time_restarts_with_the_business_day() -> None:
    out = traces.new_center(T0)
    login(out.center, "1001", T0)
    feed(out, pause("1001", T0 + 100, "Lunch"), unpause("1001", T0 + 160))
    assert agent_json(out, "1001")["pause_time"] == {"Lunch": 60}
    published = out.changes
    feed(out, pause("1001", MIDNIGHT + 10, "Break"))  # the first event of the new day
    assert "pause_time" not in agent_json(out, "1001")
    assert out.changes > published
    feed(out, unpause("1001", MIDNIGHT + 70))
    assert agent_json(out, "1001")["pause_time"] == {"Break": 60}


def test_reasons_past_the_bound_are_summed_together() -> None:
    times: dict[str, int] = {}
    for n in range(MAX_PAUSE_REASONS + 5):
        count_pause(times, f"reason {n}", 10)
    count_pause(times, "reason 0", 1)  # a known one still counts under its name
    assert len(times) == MAX_PAUSE_REASONS + 1
    assert times[OTHER_REASONS] == 50 and times["reason 0"] == 11


def test_pause_time_survives_a_redis_record_and_bad_ones_are_refused() -> None:
    out = traces.new_center(T0)
    login(out.center, "1001", T0)
    feed(out, pause("1001", T0 + 100, "Lunch"), unpause("1001", T0 + 160))
    agent = out.center.agents["1001"]
    record = agent.to_record()
    back = parse_agent("1001", json.dumps(record).encode())
    assert back.pause_time == {"Lunch": 60}
    old = {k: v for k, v in record.items() if k != "pause_time"}  # written before this key existed
    assert parse_agent("1001", json.dumps(old).encode()).pause_time == {}
    for bad in ([1, 2], {"Lunch": -1}, {"Lunch": 1.5}, {"Lunch": True}, {"x\r\ny": 1},
                {f"r{n}": 1 for n in range(MAX_PAUSE_REASONS + 2)}, {"L" * 65: 1}):
        with pytest.raises(BadRecord, match="pause_time"):
            parse_agent("1001", json.dumps(record | {"pause_time": bad}).encode())

