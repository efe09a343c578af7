"""Property: whatever the fragmentation, and whatever junk comes between the
messages, every valid event of a recorded trace is dispatched, in order."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.traces import trace_bytes, trace_index
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from callcenter.ami.message import Message, parse_message
from callcenter.ami.protocol import AMIProtocol

TRACE = "login.ami"
_DATA = trace_bytes(TRACE)
_ROWS = trace_index(TRACE)
BANNER = _DATA[: _ROWS[0]["len"]]
MESSAGES = [_DATA[r["off"] : r["off"] + r["len"]] for r in _ROWS[1:]]
EVENTS = [parse_message(m.replace(b"\r", b"").strip(b"\n")) for m in MESSAGES if m.startswith(b"Event: ")]
NAMES = frozenset(e.name for e in EVENTS)


def _not_a_message_start(line: bytes) -> bool:
    # The junk must stay junk: a line starting a message would *be* a message.
    return not line.replace(b"\r", b"").startswith((b"Event", b"Response"))


junk_line = (
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")).filter(_not_a_message_start)
    | st.sampled_from([b"a line without colon", b"Key: value", b"\xff\xfe\x00", b"--END COMMAND--", b""])
)
# Junk lines, ended by a blank line or glued to the next message.
junk_block = st.builds(
    lambda lines, ended: b"".join(line + b"\r\n" for line in lines) + (b"\r\n" if ended else b""),
    st.lists(junk_line, min_size=1, max_size=4),
    st.booleans(),
)
# Well-formed messages of no interest, some not UTF-8.
unknown_event = st.builds(
    lambda suffix, value: b"Event: XJunk" + suffix + b"\r\nFoo: " + value + b"\r\n\r\n",
    st.binary(max_size=10).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
    st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")),
)
stray_blank_lines = st.integers(1, 3).map(lambda n: b"\r\n" * n)
junk = st.one_of(junk_block, unknown_event, stray_blank_lines)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), all_events=st.booleans())
def test_events_survive_fragmentation_and_junk(data: st.DataObject, all_events: bool) -> None:
    junk_before = data.draw(
        st.lists(st.one_of(st.none(), junk), min_size=len(MESSAGES), max_size=len(MESSAGES)),
        label="junk before each message")
    stream = BANNER + b"".join((j or b"") + m for j, m in zip(junk_before, MESSAGES, strict=True))
    cuts = sorted(data.draw(
        st.lists(st.integers(1, len(stream) - 1), max_size=300, unique=True), label="cuts"))

    got: list[Message] = []
    proto = AMIProtocol(got.append, wanted=None if all_events else NAMES, clock=Clock())
    proto.makeConnection(StringTransport())
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        proto.dataReceived(stream[start:end])

    assert proto.connected
    assert [e for e in got if not e.name.startswith("XJunk")] == EVENTS
