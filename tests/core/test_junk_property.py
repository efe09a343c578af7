"""Junk between real events never changes what the service concludes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.ami.message import Message
from callcenter.ami.names import EVENTS

from . import traces

TRACE = traces.load("pause-during-call")
EXPECTED = traces.replay_direct(TRACE).summary()

# Malformed events: handled names (or unknown ones) without the fields that
# identify a call, an agent or a queue, with garbage in the number fields.
names = st.sampled_from(sorted(EVENTS | {"UserEvent", "Bogus", "", "QueueMember"}))
junk_value = st.text(max_size=20)
junk_headers = st.lists(
    st.tuples(
        st.sampled_from(["HoldTime", "TalkTime", "Timestamp", "Paused", "Position", "Count",
                         "Reason", "Privilege", "UserEvent", "X-Junk", "Wait", "InCall"]),
        st.one_of(junk_value, st.sampled_from(["1795750000.5", "-3", "nan", "1e308", "99999999999"])),
    ),
    max_size=6,
)
junk = st.builds(lambda n, h: Message([("Event", n), *h]), names, junk_headers)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), junk), max_size=40))
def test_junk_between_events_changes_nothing(insertions: list[tuple[int, Message]]) -> None:
    messages = TRACE.messages()
    for pos, msg in sorted(insertions, key=lambda p: p[0], reverse=True):
        at = pos % (len(messages) + 1)
        t = messages[at - 1][0] if at else TRACE.start
        messages.insert(at, (t, msg))
    out = traces.new_center(TRACE.start)
    for t, msg in messages:
        if t > out.clock.seconds():
            out.clock.advance(t - out.clock.seconds())
        out.center.handle_event(msg)
    out.clock.advance(10)
    assert out.summary() == EXPECTED
    traces.check(TRACE, out)
