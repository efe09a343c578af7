"""Receiver down, the service SIGKILLed mid-trace, both back: nothing lost, nothing twice.

A real ``twistd callcenter`` (as tests/store/test_kill.py runs it) replays a
recorded trace up to its busiest moment while the webhook receiver's port is
closed, so every event waits in the Redis outbox; it is SIGKILLed there.  The
receiver comes up, a new process starts on the same Redis against a PBX that
answers with its state at the cut (tests/support/pbxstate.py), and gets the
rest of the trace.  The receiver must then hold exactly the trace's events
(expected.json and the queue_log, support.py), each once by id, in order per
call and per agent, each correctly signed.
"""

from __future__ import annotations

import signal

import pytest
import pytest_twisted
from store.conftest import free_port
from store.support import Rig, busiest_cut, parse_block, redis_is, sleep, trace_blocks, wait_for
from store.test_kill import PBX, SECRET, Service, _serve, _shift, shifted, stop_all

from tests.support.pbxstate import PbxState

from .support import (
    SECRET as HOOK_SECRET,
)
from .support import (
    Receiver,
    expected_agents,
    expected_calls,
    got_agents,
    got_calls,
    no_duplicate_ids,
    per_key,
    signature_ok,
)


@pytest.mark.parametrize("name", ["answered"])
@pytest_twisted.ensureDeferred
async def test_receiver_down_and_sigkill_lose_and_repeat_nothing(tmp_path, redis_server, name):
    raw = trace_blocks(name)
    shift = _shift(raw[0][0], raw[-1][0])
    blocks = [(t + shift, shifted(b, shift)) for t, b in raw]
    events = [(t, parse_block(b)) for t, b in blocks]
    cut = busiest_cut(events)
    whole, at_cut = Rig(events[0][0]), Rig(events[0][0])
    whole.feed(events)
    at_cut.feed(events[:cut])
    assert at_cut.center.connections  # calls connected at the kill

    hook_port = free_port()  # nothing listens on it yet: the receiver is down
    secret_file = tmp_path / "hook.secret"
    secret_file.write_bytes(HOOK_SECRET + b"\n")
    hook = (
        "--webhook", f"http://127.0.0.1:{hook_port}/hook",
        "--webhook-secret-file", str(secret_file),
        "--webhook-retry-initial", "0.1", "--webhook-retry-max", "0.5",
    )
    outbox = "callcenter:webhook:"
    report = tmp_path / "report.csv"
    procs: list[Service] = []
    ports = []
    receiver = Receiver()
    want_calls, want_agents = expected_calls(name), expected_agents(name)
    try:
        pbx1 = PBX(SECRET, [b for _, b in blocks[:cut]])
        ports.append(await _serve(pbx1))
        first = Service(tmp_path, "first", ports[-1].getHost().port, redis_server.url, report, hook)
        procs.append(first)
        await wait_for(lambda: redis_is(redis_server, at_cut.center), timeout=60,
                       what=f"the first run to reach the cut ({first.log})")
        keys = redis_server.command("KEYS", outbox + "*")
        assert len(keys) == 1
        waiting = redis_server.command("LLEN", keys[0])
        assert 0 < waiting < len(want_calls) + len(want_agents)
        first.kill(signal.SIGKILL)
        assert first.proc.returncode == -signal.SIGKILL
        assert receiver.requests == []
        assert redis_server.command("LLEN", keys[0]) == waiting  # kept across the kill

        ports.append(receiver.listen(hook_port))  # the receiver is back
        items, channels = PbxState().feed(events[:cut]).answers()
        pbx2 = PBX(SECRET, [b for _, b in blocks[cut:]], items, channels)
        ports.append(await _serve(pbx2))
        second = Service(tmp_path, "second", ports[-1].getHost().port, redis_server.url, report, hook)
        procs.append(second)
        total = len(want_calls) + len(want_agents)
        await wait_for(lambda: len(receiver.requests) >= total and redis_is(redis_server, whole.center),
                       timeout=60, what=f"the second run to deliver everything ({second.log})")
        await sleep(1.0)  # several retry periods: a duplicate would have come by now
        second.kill(signal.SIGTERM)
        assert second.proc.returncode in (0, -signal.SIGTERM), second.log.read_text()

        reqs = receiver.requests
        assert all(r.code == 200 for r in reqs)
        assert all(signature_ok(r) for r in reqs)
        assert no_duplicate_ids(reqs)
        assert per_key(got_calls(reqs)) == per_key(want_calls)
        assert per_key(got_agents(reqs)) == per_key(want_agents)
        assert len(reqs) == total
        assert redis_server.command("LLEN", keys[0]) == 0
        assert f"{waiting} undelivered event(s) from before the restart" in second.log.read_text()
    finally:
        await stop_all(procs, ports)
