"""The /callcenter WebSocket protocol of DESIGN.md, end to end on loopback:
fake PBX → AMI → real Callcenter → make_site → Autobahn client."""

from __future__ import annotations

import pytest
import pytest_twisted
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import reactor
from twisted.internet.task import deferLater

from .support import find, has

AGENT = "Local/{}@agent-connect"


async def _two_agents_and_a_caller(rig):
    uid = rig.peer.new_uid()
    await rig.feed(
        rig.peer.login("1001"),
        rig.peer.login("1002"),
        rig.peer.pause("1002", reason="lunch"),
        rig.peer.join(uid, "98427456"),
    )
    return uid


@pytest_twisted.ensureDeferred
async def test_hello_answers_one_frame_with_the_whole_state(rig):
    uid = await _two_agents_and_a_caller(rig)
    c = await rig.client()
    frame = await c.hello()
    assert [o["type"] for o in frame] == ["CONFIG", "STATS", "AGENT", "AGENT", "CALL"]
    # The defaults of issue 15 item 5: --pause-reasons "Break,Lunch,Training,Coaching", no free text.
    # Issue 13's alerts key: every threshold off by default.
    assert frame[0] == {"type": "CONFIG", "pause_reasons": ["Break", "Lunch", "Training", "Coaching"],
                        "pause_free_text": False, "alerts": {"waiting": None, "longest_wait": None,
                                                             "sla": None, "pause_minutes": {}}}
    frame = frame[1:]
    stats = frame[0]
    assert stats["calls_received"] == 1 and stats["calls_waiting"] == 1
    assert stats["agents_online"] == 2
    assert stats["day"] and "q-callcenter" in stats["queues"]
    assert stats["queues"]["q-callcenter"]["calls_waiting"] == 1
    a1 = find(frame, "AGENT", agentid="1001")
    assert a1["status"] == "AVAIL" and a1["queue"] == "q-callcenter"
    a2 = find(frame, "AGENT", agentid="1002")
    assert a2["status"] == "PAUSED" and a2["reason"] == "Lunch"  # the PBX's "lunch", configured spelling
    call = find(frame, "CALL", id=uid)
    assert call["callerid"] == "98427456" and call["status"] == "QUEUED"
    assert call["queue"] == "q-callcenter" and call["answered"] == 0
    # Exactly the center's own view (STATS' longest_wait ticks, so compare the rest).
    expected = rig.center.snapshot()
    assert frame[1:] == expected[1:]
    assert {k: v for k, v in stats.items() if k != "longest_wait"} == {
        k: v for k, v in expected[0].items() if k != "longest_wait"
    }


@pytest_twisted.ensureDeferred
async def test_no_push_before_hello(rig):
    silent = await rig.client()
    listening = await rig.client()
    await listening.hello()
    await rig.feed(rig.peer.login("1001"))
    await listening.until(has("AGENT", agentid="1001"))
    assert silent.count == 0
    # HELLO later: the state, then pushes.
    assert find(await silent.hello(), "AGENT", agentid="1001")


@pytest_twisted.ensureDeferred
async def test_every_kind_of_change_is_pushed_as_it_happens(rig):
    p = rig.peer
    c = await rig.client()
    other = await rig.client()
    await c.hello()
    await other.hello()

    async def push(*events: bytes, **stats) -> list[dict]:
        """Feed events; return the objects they pushed, then the STATS showing
        their end state (which may come in a later frame: --stats-interval)."""
        await rig.feed(*events)
        frames = await c.until(has("STATS", **stats))
        for f in frames:  # at most one STATS a frame, after its objects
            kinds = [o["type"] for o in f]
            assert "STATS" not in kinds[:-1]
        objects = [o for f in frames for o in f if o["type"] != "STATS"]
        return [*objects, frames[-1][-1]]

    f = await push(p.login("1001"), agents_online=1)
    assert find(f, "AGENT", agentid="1001")["status"] == "AVAIL"

    uid = p.new_uid()
    f = await push(p.join(uid, "555"), calls_waiting=1)
    assert f[:-1] == [find(f, "CALL", id=uid, status="QUEUED")]

    # One AMI event (AgentConnect): its CALL, CONNECT and AGENT together.
    f = await push(p.connect(uid, "555", "1001"), calls_answered=1)
    conn = find(f, "CONNECT", id=uid)
    assert conn["status"] == "INCALL" and conn["queue"] == "q-callcenter"
    assert conn["agent"]["agentid"] == "1001" and conn["call"]["callerid"] == "555"
    assert find(f, "CALL", id=uid, status="INCALL")
    assert find(f, "AGENT", agentid="1001", status="INCALL")
    assert f[-1]["connections_online"] == 1 and f[-1]["calls_waiting"] == 0

    f = await push(p.complete(uid, "555", "1001", talk=20), average_handle_time=20)
    assert find(f, "CONNECT", id=uid, status="HANGUP")
    assert find(f, "CALL", id=uid, status="HANGUP")
    assert find(f, "AGENT", agentid="1001")["status"] != "INCALL"

    uid2 = p.new_uid()
    await push(p.join(uid2, "556"), calls_waiting=1)
    f = await push(p.abandon(uid2, hold=4), calls_abandoned=1)
    assert find(f, "CALL", id=uid2, status="ABANDON")
    assert f[-1]["average_abandoned_time"] == 4

    f = await push(p.logout("1001"), agents_online=0)
    assert find(f, "AGENT", agentid="1001", status="LOGGEDOUT")
    # The second dashboard got the same story.
    await other.until(has("AGENT", agentid="1001", status="LOGGEDOUT"))


@pytest_twisted.ensureDeferred
async def test_a_burst_in_one_reactor_turn_goes_out_as_one_frame(rig):
    await rig.feed(rig.peer.login("1001"))
    c = await rig.client()
    await c.hello()
    from callcenter.ami.message import Splitter, parse_message

    uids = [rig.peer.new_uid() for _ in range(5)]
    blocks = Splitter(expect_banner=False).feed(b"".join(rig.peer.join(u, "7") for u in uids))
    for block in blocks:  # five AMI events handled within one reactor turn
        rig.center.handle_event(parse_message(block))
    (f,) = await c.until(has("STATS"))
    # Every event's objects in order, then the latest STATS only.
    assert [o["id"] for o in f[:-1]] == uids
    assert f[-1]["type"] == "STATS" and f[-1]["calls_waiting"] == 5
    # Nothing else was queued before the answer to a new HELLO.
    c.send("HELLO")
    assert (await c.frame())[1]["calls_waiting"] == 5  # after CONFIG


@pytest_twisted.ensureDeferred
async def test_a_reason_in_another_case_is_sent_in_the_configured_spelling(rig):
    await rig.feed(rig.peer.login("1001"))
    c = await rig.client()
    await c.hello()
    c.send("PAUSE:1001:lUNCH")
    await c.until(has("AGENT", agentid="1001", status="PAUSED", reason="Lunch"))
    assert [p["Reason"] for p in rig.peer.pauses()] == ["Lunch"]


@pytest_twisted.ensureDeferred
async def test_pause_and_avail_reach_asterisk_as_queuepause(rig):
    await rig.feed(rig.peer.login("1001"))
    c = await rig.client()
    await c.hello()

    c.send("PAUSE:1001:Lunch")
    await c.until(has("AGENT", agentid="1001", status="PAUSED", reason="Lunch"))
    c.send("AVAIL:1001\n")  # the original dashboards' trailing newline
    await c.until(has("AGENT", agentid="1001", status="AVAIL"))
    c.send("PAUSE:1001\r\n")
    await c.until(has("AGENT", agentid="1001", status="PAUSED", reason=""))

    pauses = rig.peer.pauses()
    for p in pauses:
        del p["ActionID"]
    assert pauses == [
        {"Action": "QueuePause", "Interface": AGENT.format(1001), "Paused": "true",
         "Queue": "q-callcenter", "Reason": "Lunch"},
        {"Action": "QueuePause", "Interface": AGENT.format(1001), "Paused": "false",
         "Queue": "q-callcenter"},
        {"Action": "QueuePause", "Interface": AGENT.format(1001), "Paused": "true",
         "Queue": "q-callcenter"},
    ]


BAD_FRAMES = [
    ("", "empty frame"),
    ("   \n", "empty frame"),
    ("FOO", "unknown command 'FOO'"),
    ("hello", "unknown command 'hello'"),
    ("PAUSE", "unknown command 'PAUSE'"),
    ("PAUSE:", "PAUSE needs an agent id"),
    ("AVAIL:", "AVAIL needs an agent id"),
    ("PAUSE::Lunch", "PAUSE needs an agent id"),
    ("PAUSE:1001:a\x07b", "pause reason contains control characters"),
    ("PAUSE:1001:Lunch\r\nAction: Logoff", "pause reason contains control characters"),
    ("PAUSE:1001:" + "x" * 65, "pause reason longer than 64 characters"),
    ("AVAIL:10\x0001", "bad agent id '10\\x0001'"),
    # Not one of the default --pause-reasons, and no --pause-free-text.
    ("PAUSE:1001:Nap", "unknown pause reason 'Nap': use one of Break, Lunch, Training, Coaching"),
]


@pytest.mark.parametrize("frame,message", BAD_FRAMES)
@pytest_twisted.ensureDeferred
async def test_bad_frame_gets_an_error_and_changes_nothing(rig, frame, message):
    await rig.feed(rig.peer.login("1001"))
    c = await rig.client()
    before = await c.hello()
    c.send(frame)
    assert await c.frame() == [{"type": "ERROR", "message": message}]
    # The next frame answers the next HELLO: nothing was pushed in between.
    after = await c.hello()
    assert after == before
    assert rig.peer.pauses() == []


@pytest_twisted.ensureDeferred
async def test_command_errors_go_to_the_sender_only(rig):
    await rig.feed(rig.peer.login("1001"), rig.peer.login("1002"))
    c = await rig.client()
    bystander = await rig.client()
    before = await c.hello()
    await bystander.hello()

    c.send("PAUSE:9999:Break")
    assert await c.frame() == [{"type": "ERROR", "message": "unknown agent 9999"}]
    assert rig.peer.pauses() == []

    rig.peer.refuse[AGENT.format(1002)] = "Interface not found"
    c.send("AVAIL:1002")
    assert await c.frame() == [{"type": "ERROR", "message": "Interface not found"}]
    assert [p["Interface"] for p in rig.peer.pauses()] == [AGENT.format(1002)]

    ami, rig.center.ami = rig.center.ami, None
    c.send("PAUSE:1001")
    assert await c.frame() == [{"type": "ERROR", "message": "not connected to Asterisk"}]
    rig.center.ami = ami

    ami.transport.abortConnection()
    await deferLater(reactor, 0.01)
    c.send("PAUSE:1001")
    (err,) = await c.frame()
    assert err["type"] == "ERROR" and "connection to Asterisk lost" in err["message"]

    assert await c.hello() == before  # nothing changed
    assert (await bystander.hello())[1:] == before[1:]  # and it heard none of it


@pytest_twisted.ensureDeferred
async def test_binary_frame_is_refused(rig):
    c = await rig.client()
    c.sendMessage(b"HELLO", isBinary=True)
    code, _reason = await c.closed
    assert code == WebSocketProtocol.CLOSE_STATUS_CODE_UNSUPPORTED_DATA


@pytest_twisted.ensureDeferred
async def test_oversize_frame_is_refused(rig):
    c = await rig.client()
    c.send("PAUSE:1001:" + "x" * 4000)  # within 4 KiB: an ordinary bad frame
    assert (await c.frame())[0]["type"] == "ERROR"
    c.send("x" * 4097)
    code, _reason = await c.closed
    assert code == WebSocketProtocol.CLOSE_STATUS_CODE_MESSAGE_TOO_BIG
