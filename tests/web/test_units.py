"""Fan-out, command parsing and origin policy, without sockets (Clock for time)."""

from __future__ import annotations

import json

import pytest
from twisted.internet.task import Clock

from callcenter.web.commands import Avail, BadCommand, Hello, Pause, parse_command
from callcenter.web.fanout import Dashboards, encode
from callcenter.web.protocol import user_message


class Recorder:
    def __init__(self) -> None:
        self.frames: list[list[dict]] = []
        self.gone = False

    def send_payload(self, payload: bytes) -> None:
        self.frames.append([json.loads(x) for x in payload.decode().split("\n")])

    send_prepared = send_payload  # the test's prepare() is the identity

    def going_away(self) -> None:
        self.gone = True


def agent(n: int, status: str = "AVAIL") -> dict:
    return {"type": "AGENT", "agentid": str(n), "status": status, "queue": "q", "time": 1}


def make_hub(fake_center):
    clock = Clock()
    hub = Dashboards(fake_center, lambda payload: payload, clock)
    hub.start()
    return hub, clock


def test_one_frame_per_reactor_turn_with_the_latest_stats(fake_center):
    hub, clock = make_hub(fake_center)
    a, b = Recorder(), Recorder()
    hub.hello(a)
    hub.hello(b)
    assert a.frames == []  # snapshots go at the end of the turn, one for both
    clock.advance(0)
    assert a.frames == [[fake_center.stats()]] and hub.snapshots == 1
    for i in range(3):
        fake_center.waiting = i + 1
        fake_center.emit([agent(i), agent(100 + i)], stats=True)
    assert len(a.frames) == 1  # nothing before the end of the turn
    clock.advance(0)
    assert a.frames[1] == [agent(0), agent(100), agent(1), agent(101), agent(2), agent(102),
                           fake_center.stats()]
    assert a.frames[1][-1]["calls_waiting"] == 3
    assert b.frames == a.frames
    clock.advance(1)
    assert len(a.frames) == 2  # no more frames until something changes


def test_stats_only_and_objects_only_changes(fake_center):
    hub, clock = make_hub(fake_center)
    a = Recorder()
    hub.hello(a)
    clock.advance(0)
    fake_center.emit([agent(1)], stats=False)
    clock.advance(0)
    assert a.frames[1:] == [[agent(1)]]
    fake_center.waiting = 1
    fake_center.emit([], stats=True)
    clock.advance(0)
    assert a.frames[2:] == [[fake_center.stats()]]


def test_an_unchanged_stats_is_not_sent_again(fake_center):
    hub, clock = make_hub(fake_center)
    a = Recorder()
    hub.hello(a)
    clock.advance(0)
    fake_center.emit([agent(1)], stats=True)  # a count that did not move
    clock.advance(0)
    assert a.frames[1:] == [[agent(1)]]
    fake_center.emit([], stats=True)
    clock.advance(5)
    assert len(a.frames) == 2 and clock.getDelayedCalls() == []


def test_stats_rides_with_frames_at_most_twice_an_interval_and_is_never_later_than_one(fake_center):
    clock = Clock()
    hub = Dashboards(fake_center, lambda payload: payload, clock, stats_interval=0.5)
    hub.start()
    a = Recorder()
    hub.hello(a)
    clock.advance(0)

    def change(waiting: int, *objects: dict) -> None:
        fake_center.waiting = waiting
        fake_center.emit(list(objects), stats=True)
        clock.advance(0)

    change(1)
    assert a.frames[1:] == [[fake_center.stats()]]  # the first after a quiet spell: at once
    clock.advance(0.1)
    change(2, agent(1))
    assert a.frames[2:] == [[agent(1)]]  # objects never wait for STATS
    clock.advance(0.1)
    change(3)
    assert len(a.frames) == 3
    clock.advance(0.1)  # 0.3 s: half an interval since the last STATS
    fake_center.emit([agent(2)])
    clock.advance(0)
    assert a.frames[3:] == [[agent(2), fake_center.stats()]]  # rides, no frame of its own
    assert a.frames[3][-1]["calls_waiting"] == 3
    clock.advance(0.05)
    change(4)  # 0.35 s: too soon to ride, and no frame comes ...
    clock.advance(0.49)
    assert len(a.frames) == 4
    clock.advance(0.01)  # ... so it goes alone, one interval after the change
    assert a.frames[4:] == [[fake_center.stats()]] and a.frames[4][0]["calls_waiting"] == 4
    assert clock.getDelayedCalls() == []
    clock.advance(1)
    change(5, agent(3))
    assert a.frames[5:] == [[agent(3), fake_center.stats()]]


def test_a_hello_while_stats_waits_brings_every_dashboard_of_the_view_level(fake_center):
    clock = Clock()
    hub = Dashboards(fake_center, lambda payload: payload, clock, stats_interval=0.5)
    hub.start()
    a, b = Recorder(), Recorder()
    hub.hello(a)
    clock.advance(0)
    fake_center.waiting = 1
    fake_center.emit([], stats=True)
    clock.advance(0.1)
    fake_center.waiting = 2
    fake_center.emit([], stats=True)  # waits for t=0.5
    hub.hello(b)
    clock.advance(0)
    assert a.frames[-1] == [fake_center.stats()] and b.frames == [[fake_center.stats()]]
    clock.advance(1)
    assert len(a.frames) == 3 and len(b.frames) == 1  # nothing left to send


def test_each_object_once_per_turn_in_its_latest_state(fake_center):
    hub, clock = make_hub(fake_center)
    a = Recorder()
    hub.hello(a)
    clock.advance(0)
    fake_center.emit([agent(1), agent(2)])
    fake_center.emit([agent(1, "PAUSED")])
    fake_center.emit([agent(3), agent(1, "INCALL")])
    clock.advance(0)
    assert a.frames[1] == [agent(2), agent(3), agent(1, "INCALL")]


def test_an_agent_that_left_a_scoped_view_and_moved_on_in_one_turn_is_removed(fake_center):
    from callcenter.auth.roles import Supervisor

    def member(queues: list[str], status: str = "AVAIL") -> dict:
        return {"type": "AGENT", "agentid": "7", "status": status, "queue": ",".join(queues),
                "queues": queues, "time": 1}

    fake_center.agents["7"] = member(["q1"])
    hub, clock = make_hub(fake_center)
    sales, other = Recorder(), Recorder()
    sales.user = Supervisor("sam", frozenset({"q1"}))
    other.user = Supervisor("sue", frozenset({"q2"}))
    hub.hello(sales)
    hub.hello(other)
    clock.advance(0)
    assert sales.frames[0][1:] == [member(["q1"])] and other.frames[0][1:] == []
    fake_center.emit([member(["q2"])])  # moved out of q1 ...
    fake_center.emit([member(["q2"], "PAUSED")])  # ... and changed again, same turn
    clock.advance(0)
    assert sales.frames[1] == [{"type": "AGENT", "agentid": "7", "status": "LOGGEDOUT",
                                "queue": "", "time": 1}]
    assert other.frames[1] == [member(["q2"], "PAUSED")]


def test_a_hello_during_a_turn_sees_every_change_exactly_once(fake_center):
    hub, clock = make_hub(fake_center)
    a, b = Recorder(), Recorder()
    hub.hello(a)
    clock.advance(0)
    fake_center.waiting = 1
    fake_center.emit([agent(1)], stats=True)
    hub.hello(b)  # pending changes go to a first; b's snapshot already has them
    fake_center.emit([agent(2)])
    clock.advance(0)
    assert a.frames[1:] == [[agent(1), agent(2), fake_center.stats()]]
    assert b.frames == [[fake_center.stats(), agent(1), agent(2)]]
    fake_center.emit([agent(3)])
    clock.advance(0)
    assert a.frames[-1] == b.frames[-1] == [agent(3)]


def test_no_work_without_dashboards(fake_center):
    hub, clock = make_hub(fake_center)
    fake_center.emit([agent(1)], stats=True)
    assert clock.getDelayedCalls() == []


def test_only_hello_clients_get_pushes_and_discard_stops_them(fake_center):
    hub, clock = make_hub(fake_center)
    a, b = Recorder(), Recorder()
    hub.hello(a)
    clock.advance(0)
    fake_center.emit([agent(1)])
    clock.advance(0)
    hub.hello(b)
    clock.advance(0)
    hub.discard(a)
    fake_center.emit([agent(2)])
    clock.advance(0)
    assert a.frames == [[fake_center.stats()], [agent(1)]]
    assert b.frames == [[fake_center.stats(), agent(1)], [agent(2)]]


def test_a_failing_client_never_breaks_the_center(fake_center):
    hub, clock = make_hub(fake_center)

    class Broken(Recorder):
        def send_prepared(self, prepared):
            raise RuntimeError("boom")

    broken, fine = Broken(), Recorder()
    hub.hello(broken)
    hub.hello(fine)
    clock.advance(0)
    fake_center.emit([agent(1)])  # must not raise into the center's event handling
    clock.advance(0)
    assert fine.frames[-1] == [agent(1)]
    assert hub.clients == [fine]


def test_stop_unsubscribes_and_closes_everyone(fake_center):
    hub, clock = make_hub(fake_center)
    a = Recorder()
    hub.hello(a)
    clock.advance(0)
    fake_center.emit([], stats=True)
    hub.stop()
    assert a.gone and fake_center.subscribers == [] and hub.clients == []
    clock.advance(0)
    assert len(a.frames) == 1  # the pending STATS was dropped
    hub.start()
    assert len(fake_center.subscribers) == 1


def test_stats_interval_option_reaches_the_fan_out(fake_center):
    from twisted.python import usage

    from callcenter.options import Options
    from callcenter.service import _web_limits
    from callcenter.web.protocol import DashboardFactory

    opts = Options(environ={"CALLCENTER_STATS_INTERVAL": "0"})
    opts.parseOptions(["--simulate"])
    factory = DashboardFactory(fake_center, reactor=Clock(), access=None, max_buffer=1, max_frame=4096,
                               limits=_web_limits(opts))
    assert factory.dashboards.stats_interval == 0.0
    with pytest.raises(usage.UsageError, match="--stats-interval"):
        Options(environ={}).parseOptions(["--simulate", "--stats-interval", "-1"])


def test_encode_is_compact_utf8_json_lines():
    payload = encode([{"type": "AGENT", "name": "Zoë"}, {"type": "CALL", "id": "1.2"}])
    assert payload == '{"type":"AGENT","name":"Zoë"}\n{"type":"CALL","id":"1.2"}'.encode()


@pytest.mark.parametrize(
    "frame,command",
    [
        ("HELLO", Hello()),
        ("HELLO\n", Hello()),
        ("HELLO \r\n", Hello()),
        ("AVAIL:1001", Avail("1001")),
        ("AVAIL:1001\n", Avail("1001")),
        ("PAUSE:1001", Pause("1001", "")),
        ("PAUSE:1001:", Pause("1001", "")),
        ("PAUSE:1001:Lunch break\n", Pause("1001", "Lunch break")),
        ("PAUSE:1001:ratio 1:2", Pause("1001", "ratio 1:2")),
        ("PAUSE:1001:Pause café ☕", Pause("1001", "Pause café ☕")),
        ("PAUSE:Local/1001@agent-connect:x", Pause("Local/1001@agent-connect", "x")),
        ("PAUSE:1001:" + "x" * 64, Pause("1001", "x" * 64)),
    ],
)
def test_commands(frame, command):
    assert parse_command(frame) == command


@pytest.mark.parametrize(
    "frame",
    ["", "\n", "HELLO!", "HELLO:x", "FOO:1", "PAUSE", "AVAIL", "PAUSE:", "AVAIL:",
     "PAUSE:1001:\u2028", "PAUSE:1001:a\tb", "PAUSE:1001:\x1b[31m", "AVAIL:" + "1" * 129,
     "PAUSE:1001:" + "x" * 65],
)
def test_bad_commands(frame):
    with pytest.raises(BadCommand):
        parse_command(frame)


def test_error_echo_is_short_and_printable():
    with pytest.raises(BadCommand) as e:
        parse_command("X" * 1000 + "\x00")
    assert len(str(e.value)) < 60 and "\x00" not in str(e.value)


def test_user_messages():
    from callcenter.ami.errors import AMIConnectionLost, AMIError, AMINotConnected
    from callcenter.center import NotConnected, UnknownAgent

    assert user_message(UnknownAgent("1234")) == "unknown agent 1234"
    assert user_message(AMIError("Interface not found")) == "Interface not found"
    assert user_message(AMINotConnected()) == "not connected to Asterisk"
    assert user_message(NotConnected("x")) == "not connected to Asterisk"
    assert "lost" in user_message(AMIConnectionLost("gone"))
    assert user_message(KeyError("bug")) is None
