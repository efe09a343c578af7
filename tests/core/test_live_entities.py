"""The dashboard hub indexes a center's agents and calls at its start from
``live_entities()`` instead of rendering the whole snapshot: the index must be
the one the snapshot's objects give, at every point of every recorded trace."""

from __future__ import annotations

import pytest

from callcenter.web.visibility import Directory

from . import traces


def _both(center) -> tuple[Directory, Directory]:
    from_objects, from_entities = Directory(), Directory()
    from_objects.load(center.snapshot())
    from_entities.load_entities(*center.live_entities())
    return from_objects, from_entities


@pytest.mark.parametrize("name", traces.EVENT_TRACES)
def test_directory_from_entities_is_the_snapshots(name: str) -> None:
    trace = traces.load(name)
    out = traces.new_center(trace.start)
    seen_agents = seen_calls = 0
    for t, msg in trace.messages():
        if t > out.clock.seconds():
            out.clock.advance(t - out.clock.seconds())
        out.center.handle_event(msg)
        a, b = _both(out.center)
        assert (a.agents, a.calls) == (b.agents, b.calls)
        seen_agents = max(seen_agents, len(a.agents))
        seen_calls = max(seen_calls, len(a.calls))
    assert seen_agents  # the trace had something to index
