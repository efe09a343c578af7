"""AMIClient against the scripted AMI server over real loopback TCP."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pytest_twisted
from support.fake_asterisk import AsteriskManager, AsteriskManagerFactory
from support.traces import TRACES, trace_bytes, trace_index, trace_messages
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint

from callcenter.ami.client import AMIClient
from callcenter.ami.errors import AMIConnectionLost, AMIError
from callcenter.ami.message import Message

# A guard against a hung test, not a measurement.
GUARD = 10


class Served:
    def __init__(self, server: AsteriskManagerFactory, **options: object) -> None:
        self.server = server
        self.port = reactor.listenTCP(0, server, interface="127.0.0.1")
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        kw: dict = {"retry_initial": 0.02, "retry_max": 0.1}
        kw.update(options)
        self.client = AMIClient(reactor, endpoint, "admin", "s3cret", **kw)
        self.hooks = 0
        self.client.add_connect_hook(self._hook)
        self.client.startService()

    def _hook(self) -> None:
        self.hooks += 1

    def connected(self) -> Deferred[None]:
        return self.client.whenConnected().addTimeout(GUARD, reactor)

    @inlineCallbacks
    def close(self):
        yield self.client.stopService()
        yield self.port.stopListening()
        for conn in self.server.connections:
            if not conn.closed:
                conn.transport.abortConnection()


def until(predicate: Callable[[], bool]) -> Deferred[None]:
    """Fires when predicate() holds (polled on the reactor)."""
    from twisted.internet.task import LoopingCall

    loop = LoopingCall(lambda: loop.stop() if predicate() else None)
    return loop.start(0.005).addTimeout(GUARD, reactor)


@pytest_twisted.inlineCallbacks
def test_plain_login_list_action_and_error_over_tcp():
    server = AsteriskManagerFactory("admin", "s3cret")
    server.answers["QueueStatus"] = trace_messages("startup-status.ami", "cti-2")
    s = Served(server)
    try:
        yield s.connected()
        assert server.actions_named("Login")[0]["Secret"] == "s3cret"
        items = yield s.client.list_action("QueueStatus")
        assert [m.name for m in items][:2] == ["Success", "QueueParams"]
        assert items[-1].name == "QueueStatusComplete" and len(items) == 9
        assert all(m.action_id == items[0].action_id for m in items)
        pong = yield s.client.action("Ping")
        assert pong["Ping"] == "Pong"
        try:
            yield s.client.action("QueuePause", Interface="Local/9@agent-connect", Paused="true")
        except AMIError as e:
            assert str(e) == "Invalid/unknown command"
        else:
            raise AssertionError("no AMIError")
    finally:
        yield s.close()


@pytest_twisted.inlineCallbacks
def test_md5_login_and_a_recorded_scenario_over_tcp():
    """answered.ami's events, written in small pieces, reach the listeners intact."""
    name = "answered.ami"
    data = trace_bytes(name)
    events = b"".join(
        data[r["off"] : r["off"] + r["len"]] for r in trace_index(name) if r["kind"] == "Event")
    expected = json.loads((TRACES / "answered.expected.json").read_text())["trace_event_counts"]
    total = sum(expected.values())
    got: list[Message] = []
    server = AsteriskManagerFactory("admin", "s3cret")
    server.booted = False  # the trace brings its own FullyBooted

    def play(conn: AsteriskManager) -> None:
        for i in range(0, len(events), 1000):
            conn.send(events[i : i + 1000])

    server.on_login = play
    server.answers["QueueStatus"] = trace_bytes("answered.final-status.ami")
    s = Served(server, md5=True)
    s.client.add_listener("*", got.append)
    try:
        yield s.connected()
        assert [m["Action"] for m in server.actions[:2]] == ["Challenge", "Login"]
        yield until(lambda: len(got) >= total)
        counts = Counter(
            f"UserEvent({m['UserEvent']})" if m.name == "UserEvent" else m.name for m in got)
        assert dict(counts) == expected
        items = yield s.client.list_action("QueueStatus")
        assert items[-1].name == "QueueStatusComplete"
    finally:
        yield s.close()


@pytest_twisted.inlineCallbacks
def test_pending_action_fails_on_connection_lost_then_relogin():
    server = AsteriskManagerFactory("admin", "s3cret")

    def hang_up(conn: AsteriskManager, msg: Message) -> None:
        conn.transport.loseConnection()

    server.answers["QueueStatus"] = hang_up
    s = Served(server)
    try:
        yield s.connected()
        try:
            yield s.client.list_action("QueueStatus")
        except AMIConnectionLost:
            pass
        else:
            raise AssertionError("no AMIConnectionLost")
        yield until(lambda: server.logins == 2 and s.client.connected)
        yield until(lambda: s.hooks == 2)
        pong = yield s.client.action("Ping")
        assert pong["Ping"] == "Pong"
    finally:
        yield s.close()


@pytest_twisted.inlineCallbacks
def test_bad_input_is_skipped_and_a_1mib_line_resets_the_connection(logs):
    server = AsteriskManagerFactory("admin", "s3cret")
    seen: list[str] = []

    def event(uid: str) -> bytes:
        return f"Event: QueueCallerJoin\r\nQueue: q-callcenter\r\nUniqueid: {uid}\r\n\r\n".encode()

    def misbehave(conn: AsteriskManager) -> None:
        if server.logins == 1:
            conn.send(b"\x00\xff\xfe garbage \x01\r\n\r\n")
            conn.send(b"Event: QueueCallerJoin\r\na line without colon\r\nUniqueid: no-colon\r\n\r\n")
            conn.send(b"Event: QueueCallerJoin\r\nCallerIDName: Jos\xe9\r\nUniqueid: latin1\r\n\r\n")
            conn.send(b"Event: BrandNewEvent\r\nFoo: bar\r\n\r\n")
            conn.send(event("before"))
            conn.send(b"Y" * (1 << 20) + b"\r\n")
            conn.send(event("lost-after-the-reset"))
        else:
            conn.send(event("after"))

    server.on_login = misbehave
    s = Served(server)
    s.client.add_listener("QueueCallerJoin", lambda m: seen.append(m["Uniqueid"]))
    try:
        yield s.connected()
        yield until(lambda: "after" in seen)
        assert seen == ["no-colon", "latin1", "before", "after"]
        assert server.logins == 2
        assert len(logs.matching("malformed AMI message")) == 1
        assert len(logs.matching("without a colon")) == 1
        assert len(logs.matching("Non-UTF-8")) == 1
        assert len(logs.matching("framing lost")) == 1
    finally:
        yield s.close()


@pytest_twisted.inlineCallbacks
def test_rejected_login_over_tcp_is_logged_once(logs):
    server = AsteriskManagerFactory("admin", "s3cret")
    server.reject = True
    s = Served(server, auth_retry=0.05)
    try:
        yield until(lambda: server.rejections >= 3)
        assert not s.client.connected
        assert len(logs.matching("AMI login as admin rejected: Authentication failed")) == 1
        assert min(list(s.client.retry_delays)) >= 0.05
    finally:
        yield s.close()
