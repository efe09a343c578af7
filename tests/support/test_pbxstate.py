"""The independent PBX model answers, at the end of every trace, what the real
Asterisk answered then (its recorded ``final-status.ami``)."""

from __future__ import annotations

import pytest

from callcenter.ami.message import Splitter, parse_message
from tests.core import traces
from tests.support.pbxstate import PbxState

NAMES = [n for n in traces.EVENT_TRACES if (traces.TRACES / f"{n}.final-status.ami").exists()]
KEYS = ("Queue", "Name", "Location", "Paused", "PausedReason", "InCall")


@pytest.mark.parametrize("name", NAMES)
def test_model_matches_the_recorded_final_status(name: str) -> None:
    trace = traces.load(name)
    model = PbxState().feed(trace.messages())
    data = (traces.TRACES / f"{name}.final-status.ami").read_bytes()
    real = [parse_message(b) for b in Splitter(expect_banner=False).feed(data)]
    want = sorted(tuple(m.get(k) for k in KEYS) for m in real if m.event == "QueueMember")
    got = sorted(tuple(m.get(k) for k in KEYS) for m in model.queue_status() if m.event == "QueueMember")
    assert got == want
    want_entries = sorted(m["Uniqueid"] for m in real if m.event == "QueueEntry")
    got_entries = sorted(m["Uniqueid"] for m in model.queue_status() if m.event == "QueueEntry")
    assert got_entries == want_entries
