"""The wire format: Splitter framing and message parsing."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.ami.message import (
    FieldReader,
    FramingError,
    Message,
    Splitter,
    format_action,
    parse_message,
    parse_text,
    unchecked_text,
)


def feed_all(data: bytes, chunk: int, **kw: object) -> list[bytes]:
    s = Splitter(**kw)
    out: list[bytes] = []
    for i in range(0, len(data), chunk):
        out.extend(s.feed(data[i : i + chunk]))
    assert feed_text_all(data, chunk, **kw) == [b.decode("utf-8", "replace") for b in out]
    return out


def as_text(blocks: list[str] | list[bytes]) -> list[str]:
    return [b if isinstance(b, str) else b.decode("utf-8", "replace") for b in blocks]


def feed_text_all(data: bytes, chunk: int, **kw: object) -> list[str]:
    """``feed_text`` in pieces, its blocks decoded where it left them bytes."""
    s = Splitter(**kw)
    out: list[str] = []
    for i in range(0, len(data), chunk):
        out.extend(as_text(s.feed_text(data[i : i + chunk])))
    return out


STREAM = (
    b"Asterisk Call Manager/11.0.0\r\n"
    b"Response: Success\r\nActionID: a-1\r\nMessage: Authentication accepted\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
    b"\r\n"  # a stray blank line between messages
    b"Event: VarSet\r\nVariable: x\r\nValue: a: b\r\n\r\n"
)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 10_000])
def test_crlf_and_lf_and_any_fragmentation_give_the_same_blocks(chunk: int) -> None:
    expected = feed_all(STREAM, len(STREAM))
    assert len(expected) == 3
    assert feed_all(STREAM, chunk) == expected
    assert feed_all(STREAM.replace(b"\r\n", b"\n"), chunk) == expected


def test_banner_is_a_single_line() -> None:
    s = Splitter()
    assert s.feed(b"Asterisk Call Manager/11.0.0\r\n") == []
    assert s.banner == "Asterisk Call Manager/11.0.0"
    assert s.feed(b"Event: X\r\n\r\n") == [b"Event: X"]


def test_no_banner_when_the_first_line_is_a_header() -> None:
    s = Splitter()
    assert s.feed(b"Response: Success\r\nActionID: 1\r\n\r\n") == [b"Response: Success\nActionID: 1"]
    assert s.banner is None


def test_repeated_headers_keep_order_and_first_wins() -> None:
    msg = parse_message(b"Response: Success\nOutput: one\nOutput: two\nOutput: three")
    assert msg["Output"] == "one"
    assert msg.getall("Output") == ["one", "two", "three"]
    assert msg.output == ["one", "two", "three"]
    assert msg.headers == [("Response", "Success"), ("Output", "one"), ("Output", "two"), ("Output", "three")]


def test_old_style_command_output_keeps_blank_lines_and_drops_the_marker() -> None:
    data = (
        b"Asterisk Call Manager/1.1\r\n"
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: c-1\r\n"
        b"Name: not a header\r\n\r\nafter a blank line\r\n--END COMMAND--\r\n\r\n"
        b"Event: Next\r\n\r\n"
    )
    for chunk in (1, 5, len(data)):
        blocks = feed_all(data, chunk)
        assert len(blocks) == 2
        msg = parse_message(blocks[0])
        assert msg.headers == [("Response", "Follows"), ("Privilege", "Command"), ("ActionID", "c-1")]
        assert msg.body == ["Name: not a header", "", "after a blank line"]
        assert msg.output == msg.body
        assert parse_message(blocks[1]).name == "Next"


def test_command_output_sharing_its_last_line_with_the_marker() -> None:
    msg = parse_message(b"Response: Follows\nPrivilege: Command\nlast line--END COMMAND--")
    assert msg.body == ["last line"]


def test_lines_without_colon_go_to_body_and_empty_values_parse() -> None:
    msg = parse_message(b"Event: Foo\nAccountCode: \nNoSpace:\njunk line\nKey: v: w")
    assert msg.headers == [("Event", "Foo"), ("AccountCode", ""), ("NoSpace", ""), ("Key", "v: w")]
    assert msg.body == ["junk line"]


def test_non_utf8_bytes_are_replaced() -> None:
    msg = parse_message(b"Event: UserEvent\nCallerIDName: Jos\xe9")
    assert msg["CallerIDName"] == "Jos\ufffd"


def test_fast_and_careful_parse_agree() -> None:
    fast = parse_message(b"Event: A\nX: 1\nX: 2\nY: 3")
    assert fast == Message([("Event", "A"), ("X", "1"), ("X", "2"), ("Y", "3")])
    assert fast.as_dict() == {"Event": "A", "X": "1", "Y": "3"}
    assert list(fast) == fast.headers
    assert fast.kind == "Event" and fast.name == "A" and fast.event == "A"


def test_get_ci_for_dialplan_written_headers() -> None:
    msg = parse_message(b"Event: UserEvent\nUserEvent: LOGGEDIN\nagentid: 1001")
    assert msg.get_ci("AgentID") == "1001"
    assert msg.get_ci("missing", "x") == "x"


class TestFramingLimit:
    def test_a_message_that_never_ends_raises(self) -> None:
        s = Splitter(max_message=100)
        with pytest.raises(FramingError):
            s.feed(b"Event: X\r\n" + b"A" * 200)
        assert s.pending == 0

    @pytest.mark.parametrize("chunk", [1, 3, 50, 10_000])
    def test_limit_is_the_same_whatever_the_fragmentation(self, chunk: int) -> None:
        # A block plus its first newline may be max_message bytes long, not one more.
        fits = b"Event: A\n" + b"B" * (100 - 10) + b"\n\n"
        assert len(fits.split(b"\n\n")[0]) + 1 == 100
        too_long = b"Event: A\n" + b"B" * (100 - 9) + b"\n\n"
        assert feed_all(b"Event: ok\n\n" + fits, chunk, max_message=100)[1] == fits[:-2]
        with pytest.raises(FramingError):
            feed_all(b"Event: ok\n\n" + too_long, chunk, max_message=100)
        with pytest.raises(FramingError):
            feed_text_all(b"Event: ok\n\n" + too_long, chunk, max_message=100)

    @pytest.mark.parametrize("chunk", [1, 7, 10_000])
    def test_the_limit_counts_bytes_not_characters(self, chunk: int) -> None:
        # 40 two-byte characters: the block that fits has 59 characters, 99 bytes.
        too_long = b"Event: A\nB: " + "\u00e9".encode() * 40 + b"x" * 8 + b"\n\n"
        fits = b"Event: A\nB: " + "\u00e9".encode() * 40 + b"x" * 7 + b"\n\n"
        assert len(fits.split(b"\n\n")[0]) + 1 == 100 == len(too_long.split(b"\n\n")[0])
        assert feed_text_all(b"Event: ok\n\n" + fits, chunk, max_message=100)[1] == fits[:-2].decode()
        for feed in (feed_all, feed_text_all):
            with pytest.raises(FramingError):
                feed(b"Event: ok\n\n" + too_long, chunk, max_message=100)  # type: ignore[operator]

    def test_text_blocks_before_the_bad_one_are_handed_over(self) -> None:
        s = Splitter(max_message=100)
        with pytest.raises(FramingError) as info:
            s.feed_text(b"Event: one\n\nEvent: two\n\n" + b"x" * 500)
        assert as_text(info.value.blocks) == ["Event: one", "Event: two"]

    def test_blocks_before_the_bad_one_are_handed_over(self) -> None:
        s = Splitter(max_message=100)
        with pytest.raises(FramingError) as info:
            s.feed(b"Event: one\n\nEvent: two\n\n" + b"x" * 500 + b"\n\n")
        assert info.value.blocks == [b"Event: one", b"Event: two"]

    def test_unfinished_command_output_is_bounded_too(self) -> None:
        s = Splitter(expect_banner=False, max_message=100)
        with pytest.raises(FramingError):
            for _ in range(50):
                s.feed(b"Response: Follows\n\nline\n" if _ == 0 else b"more output\n\n")


def test_byte_by_byte_feeding_stays_linear() -> None:
    # 60 KiB trickling in one byte at a time: must not copy the buffer per byte.
    s = Splitter(expect_banner=False)
    for b in b"Event: Big\nData: " + b"x" * 60_000:
        assert s.feed(bytes([b])) == []
    assert s.feed(b"\n\n") == [b"Event: Big\nData: " + b"x" * 60_000]


def test_format_action_accepts_repeated_headers_and_refuses_injection() -> None:
    data = format_action("Originate", [("Variable", "a=1"), ("Variable", "b=2")], Async="true")
    assert data == b"Action: Originate\r\nVariable: a=1\r\nVariable: b=2\r\nAsync: true\r\n\r\n"
    assert format_action("Ping", {"ActionID": "x"}) == b"Action: Ping\r\nActionID: x\r\n\r\n"
    with pytest.raises(ValueError):
        format_action("QueuePause", Reason="lunch\r\nAction: Logoff")


# -- lazy messages answer exactly as a full parse would --------------------------

def reference_parse(text: str) -> Message:
    """The original line-by-line parser, kept as the oracle."""
    headers: list[tuple[str, str]] = []
    body: list[str] = []
    for line in text.split("\n"):
        key, sep, value = line.partition(": ")
        if sep:
            headers.append((key, value))
        elif line.endswith(":") and " " not in line:
            headers.append((line[:-1], ""))
        elif line:
            body.append(line)
    return Message(headers, body)


def test_an_event_named_by_the_protocol_answers_like_the_oracle() -> None:
    """``unchecked_text(block, name)``: the protocol cut the name out already;
    ``name``/``event``/``kind`` and a translator's ``FieldReader`` answer as the
    full parse; read by a learnt layout, the message stays lazy and checked."""
    from support.traces import trace_bytes

    names = ("Uniqueid", "Queue", "MemberName", "Interface", "Timestamp", "Nope", "Event")
    for raw in Splitter().feed(trace_bytes("answered.ami")):
        block = raw.decode()
        if not block.startswith("Event: "):
            continue
        oracle = reference_parse(block)
        msg = unchecked_text(block, block[7:].partition("\n")[0])
        assert (msg.kind, msg.name, msg.event) == (oracle.kind, oracle.name, oracle.get("Event"))
        reader = FieldReader(names)
        reader.read(unchecked_text(block))  # learns the layout
        assert reader.read(msg) == tuple(oracle.get(k) for k in names)
        assert msg.lazy  # read by one match, not parsed
        assert msg.skipped_lines() == []
        assert msg.as_dict() == oracle.as_dict()
        assert msg.event == oracle.get("Event")


def test_trace_messages_are_lazy_and_answer_like_the_oracle() -> None:
    from support.traces import trace_bytes

    blocks = Splitter().feed(trace_bytes("answered.ami"))
    for block in blocks:
        oracle = reference_parse(block.decode())
        msg = parse_message(block)
        assert msg.lazy  # Asterisk's messages all qualify
        assert msg.name == oracle.name and msg.kind == oracle.kind
        assert msg.get("Uniqueid") == oracle.get("Uniqueid")
        assert msg.lazy  # lookups by search do not parse
        for key in {k for k, _ in oracle.headers} | {"Nope", "Event:", "Queue: q", ""}:
            assert msg.get(key) == oracle.get(key)
            assert (key in msg) == (key in oracle)
        assert not msg.lazy  # so many lookups: parsed once, then dict lookups
        assert msg == oracle


line_text = st.text(alphabet="ab: \t\xe9", max_size=12)
word = st.sampled_from(["a", "b", "ab", "", "a b", "a:"])
# Header-like lines of every shape the parser tells apart, and random ones.
line = st.one_of(
    st.builds(lambda k, v: f"{k}: {v}", word, line_text),  # a header (value may hold ": ")
    st.builds(lambda k: f"{k}:", word),  # a header with no space, or a body line
    line_text,
)
message_text = st.lists(line, min_size=1, max_size=8).map("\n".join).filter(
    lambda t: not t.startswith("Response: Follows"))


@settings(max_examples=400, deadline=None)
@given(text=message_text, keys=st.lists(st.one_of(word, line_text), max_size=12),
       unchecked=st.booleans(), read_first=st.booleans(), picks=st.integers(0, 10))
def test_lazy_lookups_equal_the_full_parse(
    text: str, keys: list[str], unchecked: bool, read_first: bool, picks: int
) -> None:
    oracle = reference_parse(text)
    msg = unchecked_text(text) if unchecked else parse_text(text)
    if read_first:  # the protocol asks once the listeners are done
        assert_skipped_lines(msg, text, oracle)
    if picks:
        # A reader that learnt this layout from another message reads this one
        # by one match (an unchecked one is then known to need no check).
        reader = FieldReader(keys)
        reader.read(unchecked_text(text))
        for _ in range(picks):
            assert reader.read(msg) == tuple(oracle.get(k) for k in keys)
    for key in keys + [k for k, _ in oracle.headers]:
        assert msg.get(key, "<none>") == oracle.get(key, "<none>")
        assert (key in msg) == (key in oracle)
        if key in oracle:
            assert msg[key] == oracle[key]
    assert (msg.kind, msg.name) == (oracle.kind, oracle.name)
    assert msg.headers == oracle.headers
    assert msg.body == oracle.body
    assert msg.get_ci("A") == oracle.get_ci("A")
    assert msg.as_dict() == oracle.as_dict()
    assert msg.skipped_lines() == oracle.body  # parsed by now: exact


def assert_skipped_lines(msg: Message, text: str, oracle: Message) -> None:
    """Of a lazy message: the body, unless a line with two ": " hides a line
    with none from the cheap check (then nothing: lookups are right anyway)."""
    skipped = msg.skipped_lines()
    if all(line.count(": ") <= 1 for line in text.split("\n")):
        assert skipped == oracle.body
    else:
        assert skipped in ([], oracle.body)


@settings(max_examples=200, deadline=None)
@given(text=message_text)
def test_an_unchecked_message_read_in_full_equals_the_full_parse(text: str) -> None:
    oracle = reference_parse(text)
    msg = unchecked_text(text)
    assert msg.as_dict() == oracle.as_dict()  # no lookup by name first
    assert (msg.headers, msg.body, msg.skipped_lines()) == (oracle.headers, oracle.body, oracle.body)


# An independent statement of the framing for streams without old-style command
# output: drop "\r", blocks are what lies between runs of two or more "\n"
# (leading newlines skipped); what follows the last blank line is not a block yet.
def reference_blocks(stream: bytes) -> list[bytes]:
    pieces = re.split(rb"\n\n+", stream.replace(b"\r", b"").lstrip(b"\n"))
    return [p for p in pieces[:-1] if p]


_LINE = st.sampled_from([b"Event: Hangup", b"Uniqueid: 17.1", b"Queue: q", b"Value: a: b",
                         b"Junk", b"Empty:", b"\r", b"", b"\n",
                         "Name: Jos\u00e9 \u20ac".encode(), b"Latin1: Jos\xe9", b"\xc3"])


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(_LINE, max_size=60),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=20),
)
def test_blocks_equal_the_reference_whatever_the_fragmentation(
    lines: list[bytes], cuts: list[int]
) -> None:
    stream = b"Event: First\n" + b"\n".join(lines) + b"\n\nEvent: Last\n\n"
    s = Splitter(expect_banner=False)
    got: list[bytes] = []
    pos = 0
    for n in cuts:  # uneven pieces, then the rest in one go (the bulk path)
        got.extend(s.feed(stream[pos : pos + n]))
        pos += n
    got.extend(s.feed(stream[pos:]))
    assert got == reference_blocks(stream)
    assert s.pending == 0
    # The same pieces to feed_text: the same blocks, decoded in one go or not.
    s = Splitter(expect_banner=False)
    texts: list[str] = []
    pos = 0
    for n in cuts:
        texts.extend(as_text(s.feed_text(stream[pos : pos + n])))
        pos += n
    texts.extend(as_text(s.feed_text(stream[pos:])))
    assert texts == [b.decode("utf-8", "replace") for b in reference_blocks(stream)]
    assert s.pending == 0
