"""AMIClient driven by a MemoryReactorClock: login, hooks, listeners,
reconnection and its backoff, rejected logins, keepalive, quiet logs."""

from __future__ import annotations

from support.fake_asterisk import retag
from support.traces import trace_messages
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost
from twisted.logger import LogLevel

from callcenter.ami.errors import AMIError, AMINotConnected
from callcenter.ami.message import Message

from .test_protocol import QUEUE_CALLER_JOIN, result_of


def test_login_then_connect_hooks_then_connected(rig_factory, logs) -> None:
    rig = rig_factory()
    waiting = rig.client.whenConnected()
    assert not rig.client.connected
    assert result_of(rig.client.action("Ping")).check(AMINotConnected)
    link = rig.start()
    assert rig.server.logins == 1
    assert rig.client.connected
    assert result_of(waiting) is None
    assert result_of(rig.client.whenConnected()) is None  # already connected: at once
    assert rig.hook_calls == 1
    login = rig.server.actions_named("Login")[0]
    assert (login["Username"], login["Secret"]) == ("admin", "s3cret")
    assert logs.matching("AMI logged in to 127.0.0.1:5038 as admin (Asterisk Call Manager/11.0.0)")
    d = rig.client.action("Ping")
    link.pump()
    assert result_of(d)["Ping"] == "Pong"


def test_md5_login(rig_factory) -> None:
    rig = rig_factory(md5=True)
    rig.start()
    assert rig.client.connected
    assert [m["Action"] for m in rig.server.actions] == ["Challenge", "Login", "Ping"]
    assert "Secret" not in rig.server.actions[1]


def test_connect_hook_runs_queuestatus(rig_factory) -> None:
    rig = rig_factory()
    answer = trace_messages("startup-status.ami", "cti-2")
    rig.server.answers["QueueStatus"] = answer
    results: list[list[Message]] = []
    rig.client.add_connect_hook(lambda: rig.client.list_action("QueueStatus").addCallback(results.append))
    rig.start()
    assert [m.name for m in results[0]][-1] == "QueueStatusComplete"
    assert len(results[0]) == 9


def test_hooks_run_in_order_and_a_failing_one_is_logged(rig_factory, logs) -> None:
    rig = rig_factory()
    order: list[str] = []
    slow: Deferred[None] = Deferred()

    def first() -> Deferred[None]:
        order.append("first")
        return slow

    def broken() -> None:
        order.append("broken")
        raise RuntimeError("hook bug")

    rig.client.add_connect_hook(first)
    rig.client.add_connect_hook(broken)
    rig.client.add_connect_hook(lambda: order.append("last"))
    rig.start()
    assert order == ["first"]  # the next hook waits for the first one's Deferred
    slow.callback(None)
    assert order == ["first", "broken", "last"]
    assert logs.matching("AMI connect hook")
    assert rig.client.connected


def test_listeners_by_name_and_star(rig_factory, logs) -> None:
    rig = rig_factory()
    named: list[str] = []
    everything: list[str] = []

    def bad(msg: Message) -> None:
        raise ValueError("listener bug")

    rig.client.add_listener("QueueCallerJoin", lambda m: named.append(m["Queue"]))
    rig.client.add_listener("QueueCallerJoin", bad)
    link = rig.start()
    link.send(QUEUE_CALLER_JOIN + b"Event: VarSet\r\nVariable: x\r\n\r\n")
    assert named == ["q-callcenter"]
    failures = [e for e in logs.events if "failed on event" in str(e.get("log_format"))]
    assert len(failures) == 1
    assert failures[0]["event"] == "QueueCallerJoin"
    assert failures[0]["log_failure"].check(ValueError)
    assert logs.matching("AMI listener test_listeners_by_name_and_star.<locals>.bad failed on event QueueCallerJoin")
    rig.client.add_listener("*", lambda m: everything.append(m.name))
    link.send(QUEUE_CALLER_JOIN + b"Event: VarSet\r\nVariable: x\r\n\r\n")
    assert named == ["q-callcenter"] * 2
    assert everything == ["QueueCallerJoin", "VarSet"]
    rig.client.remove_listener("QueueCallerJoin", bad)
    rig.client.remove_listener("QueueCallerJoin", bad)  # twice: harmless
    rig.client.remove_listener("*", everything.append)  # never added: harmless
    assert rig.client.connected


def test_backoff_grows_and_is_capped_while_the_server_keeps_dropping_us(rig_factory, logs) -> None:
    rig = rig_factory()
    events: list[Message] = []
    rig.client.add_listener("QueueCallerJoin", events.append)
    link = rig.start()
    delays = []
    for n in range(1, 8):
        # The server dies in the middle of a message.
        link.send(QUEUE_CALLER_JOIN[:40])
        link.close(ConnectionLost("reset by peer"))
        assert not rig.client.connected
        assert rig.disconnects == n
        delay = rig.next_delay()
        delays.append(delay)
        rig.advance(delay - 0.01)
        assert rig.net.waiting == 0  # not before its time
        rig.advance(0.01)
        link = rig.net.accept()
        assert rig.client.connected  # logged in again
        assert rig.hook_calls == n + 1  # and the connect hooks ran again
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert rig.server.logins == 8
    assert events == []  # the cut message never surfaced
    link.send(QUEUE_CALLER_JOIN)
    assert [e["Queue"] for e in events] == ["q-callcenter"]
    assert len(logs.matching("lost (Connection to the other side was lost")) == 7


def test_backoff_starts_over_once_a_connection_proved_healthy(rig_factory) -> None:
    rig = rig_factory(ping_interval=20, ping_timeout=10)
    link = rig.start()
    for _ in range(3):
        link.close(ConnectionLost())
        rig.advance(rig.next_delay())
        link = rig.net.accept()
    assert list(rig.client.retry_delays) == [1, 2, 4]
    rig.advance(20)  # keepalive Ping answered
    link.pump()
    link.close(ConnectionLost())
    assert rig.next_delay() == 1


def test_jitter_stays_under_the_cap(rig_factory) -> None:
    rig = rig_factory(jitter=lambda: 0.5, retry_max=4)
    link = rig.start()
    for _ in range(4):
        link.close(ConnectionLost())
        rig.advance(rig.next_delay())
        link = rig.net.accept()
    assert list(rig.client.retry_delays) == [1.5, 2.5, 4, 4]


def test_rejected_login_is_logged_once_and_retried_slowly(rig_factory, logs) -> None:
    rig = rig_factory(auth_retry=60)
    rig.server.reject = True
    hooks_before = rig.hook_calls
    rig.start()
    assert not rig.client.connected
    for attempt in range(1, 4):
        assert rig.server.rejections == attempt
        assert rig.next_delay() >= 60
        rig.advance(59)
        assert rig.net.waiting == 0  # no tight loop
        rig.advance(rig.next_delay() - 59)
        rig.net.accept()
    rejected = logs.matching("rejected")
    assert rejected == ["AMI login as admin rejected: Authentication failed (retrying every 60 s)"]
    assert [e["log_level"] for e in logs.events if "rejected" in str(e.get("log_format"))] == [LogLevel.error]
    assert rig.hook_calls == hooks_before
    assert not logs.matching("Traceback")
    # The secret gets fixed on the PBX: the next attempt logs in.
    rig.server.reject = False
    rig.advance(rig.next_delay())
    rig.net.accept()
    assert rig.client.connected and rig.hook_calls == 1
    assert logs.matching("AMI login as admin accepted again")


def test_keepalive_ping_timeout_aborts_and_reconnects(rig_factory, logs) -> None:
    rig = rig_factory(ping_interval=20, ping_timeout=10)
    link = rig.start()
    assert len(rig.server.actions_named("Ping")) == 1  # the first action after login
    rig.advance(20)
    link.pump()
    assert len(rig.server.actions_named("Ping")) == 2
    rig.server.answer_ping = False
    rig.advance(20)
    link.pump()
    assert len(rig.server.actions_named("Ping")) == 3
    rig.advance(9.9)
    link.pump()
    assert rig.client.connected
    rig.advance(0.1)
    link.pump()
    assert link.client_transport.disconnected  # aborted, not politely closed
    assert link.closed and not rig.client.connected
    assert logs.matching("no answer to Ping from 127.0.0.1:5038 within 10 s")
    assert rig.disconnects == 1
    rig.server.answer_ping = True  # the PBX is back: the next login's first Ping is answered
    rig.advance(rig.next_delay())
    rig.net.accept()
    assert rig.client.connected and rig.hook_calls == 2


def test_a_busy_link_whose_pong_is_late_is_not_dropped(rig_factory, logs) -> None:
    """At ~10,000 events/s the Pong queues behind events: events kept coming,
    so the link is alive and stays up."""
    rig = rig_factory(ping_interval=20, ping_timeout=10)
    link = rig.start()
    rig.server.answer_ping = False
    rig.advance(20)
    link.pump()
    for _ in range(10):  # events keep arriving while the Pong is late
        rig.advance(1)
        link.send(QUEUE_CALLER_JOIN)
        link.pump()
    rig.advance(0.5)
    link.pump()
    assert rig.client.connected and not logs.matching("no answer to Ping")
    # A link that goes silent is still dropped on the next Ping.
    rig.advance(20)
    link.pump()
    rig.advance(10)
    link.pump()
    assert not rig.client.connected and logs.matching("no answer to Ping")


def test_no_answer_to_login_gives_up_after_ping_timeout(rig_factory, logs) -> None:
    rig = rig_factory(ping_timeout=10)
    rig.server.silent = True  # e.g. something else listens on that port
    link = rig.start()
    assert rig.server.actions_named("Login")
    rig.advance(9.9)
    link.pump()
    assert not link.closed
    rig.advance(0.1)
    link.pump()
    assert link.closed and not rig.client.connected
    assert logs.matching("No answer to Login from AMI at 127.0.0.1:5038 within 10 s")
    rig.server.silent = False
    rig.advance(rig.next_delay())
    rig.net.accept()
    assert rig.client.connected


def test_no_answer_to_the_first_action_aborts_and_retries(rig_factory, logs) -> None:
    rig = rig_factory(ping_timeout=10)
    rig.server.answer_ping = False
    link = rig.start()
    assert not rig.client.connected and rig.hook_calls == 0
    rig.advance(10)
    link.pump()
    assert link.closed and rig.hook_calls == 0
    assert logs.matching("No answer to Ping after login from AMI at 127.0.0.1:5038 within 10 s")
    rig.server.answer_ping = True
    rig.advance(rig.next_delay())
    rig.net.accept()
    assert rig.client.connected and rig.hook_calls == 1


def test_unreachable_pbx_is_logged_sparingly(rig_factory, logs) -> None:
    rig = rig_factory()
    rig.client.startService()
    for _ in range(25):
        rig.net.refuse()
        rig.advance(rig.next_delay())
    lines = [line for line in logs.lines() if "connect to AMI" in line]
    assert len(lines) == 3, lines  # the first failure, then the 10th and the 20th
    assert lines[0].startswith("Cannot connect to AMI at 127.0.0.1:5038: Connection was refused")
    assert lines[0].endswith("; retrying (every 30 s at most)")
    assert lines[1].endswith("(10 times in a row)") and lines[2].endswith("(20 times in a row)")
    assert not logs.matching("Scheduling retry")  # ClientService's per-retry chatter is filtered
    assert not logs.matching("Traceback")
    assert max(rig.client.retry_delays) == 30
    rig.net.accept()
    assert rig.client.connected
    assert logs.matching("AMI at 127.0.0.1:5038 reachable again after 25 failed attempt(s)")


def test_a_different_failure_is_a_state_change_worth_a_line(rig_factory, logs) -> None:
    from twisted.internet.error import TCPTimedOutError

    rig = rig_factory()
    rig.client.startService()
    rig.net.refuse()
    rig.advance(rig.next_delay())
    rig.net.refuse()
    rig.advance(rig.next_delay())
    rig.net.refuse(TCPTimedOutError())
    assert len([line for line in logs.lines() if "connect to AMI" in line]) == 2


def test_a_server_that_hangs_up_before_login_is_logged_sparingly(rig_factory, logs) -> None:
    rig = rig_factory()
    rig.server.silent = True
    rig.client.startService()
    for _ in range(12):
        rig.net.accept().close(ConnectionLost("reset by peer"))
        rig.advance(rig.next_delay())
    lines = logs.matching("closed the connection before login completed")
    assert len(lines) == 2 and lines[1].endswith("(10 times in a row)")
    assert max(rig.client.retry_delays) == 30  # and backing off all along
    rig.server.silent = False
    rig.net.accept()
    assert rig.client.connected


def test_framing_loss_resets_the_connection_and_the_stream_resyncs(rig_factory, logs) -> None:
    rig = rig_factory()
    events: list[str] = []
    rig.client.add_listener("QueueCallerJoin", lambda m: events.append(m["Uniqueid"]))
    link = rig.start()
    link.send(QUEUE_CALLER_JOIN + b"Z" * (1 << 20) + b"\r\n")
    assert link.closed and link.client_transport.disconnected
    assert events == ["1795665109.5"]
    rig.advance(rig.next_delay())
    link = rig.net.accept()
    link.send(QUEUE_CALLER_JOIN.replace(b"1795665109.5", b"1795665109.9"))
    assert events == ["1795665109.5", "1795665109.9"]
    assert len(logs.matching("framing lost")) == 1


def test_pending_action_fails_when_the_connection_drops(rig_factory) -> None:
    from callcenter.ami.errors import AMIConnectionLost

    rig = rig_factory()
    rig.server.answers["QueueStatus"] = lambda server, msg: None  # never answered
    link = rig.start()
    d = rig.client.list_action("QueueStatus")
    link.pump()
    link.close(ConnectionLost())
    assert result_of(d).check(AMIConnectionLost)
    assert result_of(rig.client.action("Ping")).check(AMINotConnected)


def test_error_answer_through_the_client(rig_factory) -> None:
    rig = rig_factory()
    link = rig.start()
    d = rig.client.action("QueuePause", Interface="Local/9@agent-connect", Paused="true")
    link.pump()
    f = result_of(d)
    assert f.check(AMIError) and str(f.value) == "Invalid/unknown command"


def test_stop_closes_and_does_not_reconnect(rig_factory) -> None:
    rig = rig_factory()
    link = rig.start()
    stopped = rig.client.stopService()
    link.pump()
    assert link.closed
    assert result_of(stopped) is None
    assert rig.disconnects == 1
    rig.advance(3600)
    assert rig.net.waiting == 0
    waiting = rig.client.whenConnected()
    rig.client.startService()
    rig.net.accept()
    assert result_of(waiting) is None and rig.hook_calls == 2


def test_stop_while_waiting_to_retry_cancels_waiters(rig_factory) -> None:
    rig = rig_factory()
    rig.client.startService()
    rig.net.refuse()
    waiting = rig.client.whenConnected()
    result_of(rig.client.stopService())
    assert result_of(waiting).check(CancelledError)
    rig.advance(3600)
    assert rig.net.waiting == 0


def test_queuestatus_answer_bytes_can_be_retagged() -> None:
    data = retag(trace_messages("startup-status.ami", "cti-2"), "x-1")
    assert b"cti-2" not in data and data.count(b"ActionID: x-1") == 9


def test_a_listeners_failed_deferred_is_logged(rig_factory, logs) -> None:
    from twisted.internet.defer import fail

    rig = rig_factory()
    rig.client.add_listener("QueueCallerJoin", lambda m: fail(KeyError("state bug")))
    link = rig.start()
    link.send(QUEUE_CALLER_JOIN)
    failures = [e for e in logs.events if "failed on event" in str(e.get("log_format"))]
    assert len(failures) == 1 and failures[0]["log_failure"].check(KeyError)
    assert failures[0]["log_level"] == LogLevel.error
    assert rig.client.connected
