"""The independent PBX model answers, at the end of every trace, what the real
Asterisk answered then (its recorded ``final-status.ami``)."""

from __future__ import annotations

import pytest

from callcenter.ami.message import Splitter, parse_message
from tests.core import traces
from tests.support.pbxstate import PbxState

NAMES = [n for n in traces.EVENT_TRACES if (traces.TRACES / f"{n}.final-status.ami").exists()]
KEYS = ("Queue", "Name", "Location", "Paused", "PausedReason", "InCall")


def _model_and_real(name: str) -> tuple[PbxState, list]:
    """The model after the whole trace, and the real Asterisk's answer then."""
    trace = traces.load(name)
    model = PbxState().feed(trace.messages())
    data = (traces.TRACES / f"{name}.final-status.ami").read_bytes()
    return model, [parse_message(b) for b in Splitter(expect_banner=False).feed(data)]


@pytest.mark.parametrize("name", NAMES)
def test_model_matches_the_recorded_final_status(name: str) -> None:
    model, real = _model_and_real(name)
    want = sorted(tuple(m.get(k) for k in KEYS) for m in real if m.event == "QueueMember")
    got = sorted(tuple(m.get(k) for k in KEYS) for m in model.queue_status() if m.event == "QueueMember")
    assert got == want
    want_entries = sorted(m["Uniqueid"] for m in real if m.event == "QueueEntry")
    got_entries = sorted(m["Uniqueid"] for m in model.queue_status() if m.event == "QueueEntry")
    assert got_entries == want_entries


PARAMS = ("Completed", "Abandoned", "Holdtime", "TalkTime", "Calls")


@pytest.mark.parametrize("name", NAMES)
def test_model_counts_queue_params_like_app_queue(name: str) -> None:
    """Completed/Abandoned (and the running means) as the real QueueParams at the end."""
    model, real = _model_and_real(name)
    want = {m["Queue"]: tuple(m.get(k) for k in PARAMS) for m in real if m.event == "QueueParams"}
    got = {m["Queue"]: tuple(m.get(k) for k in PARAMS) for m in model.queue_status()
           if m.event == "QueueParams"}
    for queue, values in got.items():
        exact = (0, 1, 4)  # Completed, Abandoned, Calls
        assert [values[i] for i in exact] == [want[queue][i] for i in exact], queue
        # The means take app_queue's own clock reading, a second off the event's at most.
        for i in (2, 3):
            assert abs(int(values[i]) - int(want[queue][i])) <= 1, (queue, PARAMS[i])
    # Queues the model never saw used are idle at the PBX too.
    for queue in set(want) - set(got):
        assert want[queue][:2] == ("0", "0"), queue
