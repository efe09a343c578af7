"""FieldReader gives, for every item, exactly what ``Message.get`` gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.ami.message import FieldReader, Message, parse_text, unchecked_text

NAMES = ("Queue", "Name", "Paused", "PausedReason", "Absent")
MEMBER = ("Event: QueueMember\nQueue: q1\nName: 1001\nLocation: PJSIP/1001\nPaused: 0\n"
          "PausedReason: \nActionID: a1")


def _expected(text: str) -> tuple[str | None, ...]:
    fresh = parse_text(text)
    return tuple(fresh.get(n) for n in NAMES)


def test_items_of_one_layout_are_read_by_the_learnt_pattern() -> None:
    reader = FieldReader(NAMES)
    first, second = parse_text(MEMBER), parse_text(MEMBER.replace("1001", "1002"))
    assert reader.read(first) == ("q1", "1001", "0", "", None)
    assert reader.read(second) == ("q1", "1002", "0", "", None)
    assert second.lazy  # read by the pattern: never parsed


def test_other_layouts_and_odd_items_are_read_like_get() -> None:
    reader = FieldReader(NAMES, max_layouts=1)
    texts = [
        MEMBER,
        MEMBER.replace("Name: 1001\n", ""),  # a header missing
        MEMBER.replace("Paused: 0\n", "Paused: 0\nQueue: second\n"),  # a name twice: first wins
        MEMBER.replace("PausedReason: ", "PausedReason:"),  # "Key:" with nothing after it
        MEMBER + "\na line without a colon",
        MEMBER.replace("Queue: q1", "Queue: q1: with: colons"),
        MEMBER.replace("Name: 1001", "Name:  spaced "),
    ]
    for text in texts:
        for make in (parse_text, unchecked_text):
            assert reader.read(make(text)) == _expected(text), text
    built = Message.of(("Event", "QueueMember"), ("Queue", "q9"))  # not from text
    assert reader.read(built) == ("q9", None, None, None, None)


_line = st.one_of(
    st.tuples(st.sampled_from(NAMES + ("Event", "Other", "name")), st.sampled_from([": ", ":", " : ", ""]),
              st.text(st.characters(blacklist_characters="\n\r"), max_size=6)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_line, min_size=1, max_size=8), min_size=1, max_size=6))
def test_any_items_read_like_get(items: list) -> None:
    reader = FieldReader(NAMES)
    for lines in items:
        text = "\n".join(k + sep + v for k, sep, v in lines)
        for make in (parse_text, unchecked_text):
            assert reader.read(make(text)) == _expected(text), repr(text)
