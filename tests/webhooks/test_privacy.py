"""Caller numbers reach configured hooks only: no log line above debug shows one."""

from __future__ import annotations

import json

import pytest
from store.support import Rig, trace_events
from support.traces import TRACES
from twisted.logger import LogLevel

from callcenter.ami.message import Message

NAMES = ["answered", "abandon", "pause-during-call", "ringnoanswer", "queue-entries/overflow-small"]


def _numbers(name: str) -> set[str]:
    doc = json.loads((TRACES / f"{name}.expected.json").read_text())
    return {c["cid"] for c in doc["callers"]}


def _loud(logs) -> list[str]:
    from twisted.logger import formatEvent

    return [formatEvent(e) for e in logs.events if e.get("log_level", LogLevel.info) > LogLevel.debug]


@pytest.mark.parametrize("name", NAMES)
def test_replaying_a_trace_logs_no_caller_number_above_debug(logs, name):
    events = trace_events(name)
    rig = Rig(events[0][0])
    rig.feed(events)
    rig.clock.advance(10)
    numbers = _numbers(name)
    assert numbers and rig.lines  # the report (a file for the admin) still has them
    loud = _loud(logs)
    assert not [line for line in loud for n in numbers if n in line]


def test_a_bad_caller_number_is_logged_without_the_number(logs):
    events = trace_events("answered")
    rig = Rig(events[0][0])
    bad = "5551234\x07"
    rig.center.handle_event(Message([
        ("Event", "QueueCallerJoin"), ("Channel", "Local/113@public-00000009;2"),
        ("Uniqueid", "1795665099.1"), ("Queue", "q-callcenter"), ("Position", "1"),
        ("Count", "1"), ("CallerIDNum", bad), ("CallerIDName", "x"),
    ]))
    loud = _loud(logs)
    assert any("CallerIDNum" in line for line in loud)
    assert not [line for line in loud if "5551234" in line]
    debug = [e for e in logs.events if e.get("log_level") == LogLevel.debug]
    assert any("5551234" in repr(e.get("value")) for e in debug)
