"""Every recorded Asterisk trace through AMIProtocol, whole and byte by byte."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from support.traces import TRACES, trace_bytes, trace_index
from twisted.internet.testing import StringTransport

from callcenter.ami.message import Message, parse_message
from callcenter.ami.protocol import AMIProtocol

ALL_TRACES = sorted(p.name for p in TRACES.glob("*.ami"))
EXPECTED = sorted(p.name[: -len(".expected.json")] for p in TRACES.glob("*.expected.json"))


class Recorder(AMIProtocol):
    """Keeps the responses nobody asked for, which a trace is full of."""

    def __init__(self, **kw: object) -> None:
        self.received: list[Message] = []
        super().__init__(self.received.append, **kw)

    def unhandled_response(self, msg: Message) -> None:
        self.received.append(msg)


def replay(data: bytes, chunk: int, **kw: object) -> Recorder:
    proto = Recorder(**kw)
    proto.makeConnection(StringTransport())
    for i in range(0, len(data), chunk):
        proto.dataReceived(data[i : i + chunk])
    assert proto.connected, "the protocol dropped a recorded trace"
    return proto


def event_key(msg: Message) -> str:
    return f"UserEvent({msg['UserEvent']})" if msg.name == "UserEvent" else msg.name


def test_all_traces_are_found() -> None:
    assert len(ALL_TRACES) >= 17 and len(EXPECTED) >= 8


@pytest.mark.parametrize("name", ALL_TRACES)
def test_whole_and_byte_by_byte_replays_are_identical(name: str) -> None:
    data = trace_bytes(name)
    whole = replay(data, len(data))
    assert whole.received
    assert replay(data, 1).received == whole.received
    assert replay(data, 1000).received == whole.received
    # And a bare-\n copy of the stream gives the very same messages.
    assert replay(data.replace(b"\r\n", b"\n"), 997).received == whole.received
    assert whole.junk_skipped == 0


@pytest.mark.parametrize("name", EXPECTED)
def test_counts_match_what_asterisk_recorded(name: str) -> None:
    expected = json.loads((TRACES / f"{name}.expected.json").read_text())
    proto = replay(trace_bytes(f"{name}.ami"), 1)
    assert proto.banner == "Asterisk Call Manager/11.0.0"
    assert len(proto.received) == expected["trace_message_count"] - 1  # banner excluded
    events = Counter(event_key(m) for m in proto.received if m.kind == "Event")
    assert dict(events) == expected["trace_event_counts"]


@pytest.mark.parametrize("name", [n for n in ALL_TRACES if not n.endswith("final-status.ami")])
def test_messages_match_the_recorded_index(name: str) -> None:
    data = trace_bytes(name)
    rows = [r for r in trace_index(name) if r["kind"] != "Banner"]
    got = replay(data, 4096).received
    assert [(m.kind, m.name, m.action_id) for m in got] == [
        (r["kind"], r["name"], r["ActionID"]) for r in rows
    ]
    # Each message is exactly what the reference parser makes of its recorded bytes.
    for msg, row in zip(got, rows, strict=True):
        raw = data[row["off"] : row["off"] + row["len"]].replace(b"\r\n", b"\n").strip(b"\n")
        assert msg == parse_message(raw)


@pytest.mark.parametrize("name", ["answered.ami", "startup-status.ami"])
def test_wanted_events_only_are_parsed_and_dispatched(name: str) -> None:
    data = trace_bytes(name)
    wanted = {"QueueCallerJoin", "UserEvent", "QueueMember"}
    full = [m for m in replay(data, len(data)).received if m.kind == "Event" and m.name in wanted]
    proto = replay(data, 1, wanted=wanted)
    events = [m for m in proto.received if m.kind == "Event"]
    assert events == full
    total_events = sum(1 for r in trace_index(name) if r["kind"] == "Event")
    assert proto.events_skipped == total_events - len(full)
