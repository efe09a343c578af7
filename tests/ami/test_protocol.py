"""AMIProtocol on a StringTransport: login, actions, lists, errors, bad input."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from support.fake_asterisk import BANNER, retag
from support.traces import trace_bytes, trace_messages
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

import callcenter.ami.protocol as protocol_module
from callcenter.ami.errors import AMIConnectionLost, AMIError
from callcenter.ami.message import Message, Splitter, parse_message
from callcenter.ami.protocol import AMIProtocol

QUEUE_CALLER_JOIN = (
    b"Event: QueueCallerJoin\r\nPrivilege: agent,all\r\nChannel: Local/113@public-00000002;2\r\n"
    b"Uniqueid: 1795665109.5\r\nQueue: q-callcenter\r\nPosition: 1\r\nCount: 1\r\n\r\n"
)


class Wire:
    """One protocol, its transport, and the actions it wrote."""

    def __init__(self, wanted: object = None, banner: bool = True) -> None:
        self.clock = Clock()
        self.events: list[Message] = []
        self.proto = AMIProtocol(self.events.append, wanted=wanted, clock=self.clock)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self._splitter = Splitter(expect_banner=False)
        if banner:
            self.proto.dataReceived(BANNER)

    def sent(self) -> list[Message]:
        """Actions written since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return [parse_message(b) for b in self._splitter.feed(data)]

    def last(self) -> Message:
        actions = self.sent()
        assert len(actions) == 1, actions
        return actions[0]

    def recv(self, data: bytes, chunk: int | None = None) -> None:
        step = chunk or len(data) or 1
        for i in range(0, len(data), step):
            self.proto.dataReceived(data[i : i + step])

    def answer(self, action: Message, *lines: str) -> None:
        text = f"Response: {lines[0]}\r\nActionID: {action.action_id}\r\n"
        text += "".join(f"{line}\r\n" for line in lines[1:]) + "\r\n"
        self.recv(text.encode())


def result_of(d):
    out: list = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    return out[0]


def test_plain_login() -> None:
    w = Wire()
    d = w.proto.login("admin", "s3cret", events="on")
    login = w.last()
    assert (login["Action"], login["Username"], login["Secret"], login["Events"]) == (
        "Login", "admin", "s3cret", "on")
    assert login.action_id
    assert not w.proto.logged_in
    w.answer(login, "Success", "Message: Authentication accepted")
    assert result_of(d)["Message"] == "Authentication accepted"
    assert w.proto.logged_in


def test_md5_challenge_login() -> None:
    w = Wire()
    d = w.proto.login("admin", "s3cret", md5=True)
    challenge = w.last()
    assert (challenge["Action"], challenge["AuthType"]) == ("Challenge", "MD5")
    w.answer(challenge, "Success", "Challenge: 840215733")
    login = w.last()
    assert login["Action"] == "Login" and login["AuthType"] == "MD5"
    assert login["Key"] == hashlib.md5(b"840215733s3cret").hexdigest()
    assert "Secret" not in login
    w.answer(login, "Success", "Message: Authentication accepted")
    assert isinstance(result_of(d), Message)
    assert w.proto.logged_in


def test_rejected_login_is_an_amierror_with_asterisks_message() -> None:
    w = Wire()
    d = w.proto.login("admin", "wrong")
    w.answer(w.last(), "Error", "Message: Authentication failed")
    f = result_of(d)
    assert isinstance(f, Failure) and f.check(AMIError)
    assert str(f.value) == "Authentication failed"
    assert f.value.response["Response"] == "Error"
    assert not w.proto.logged_in


def test_every_action_gets_a_unique_action_id_and_its_own_answer() -> None:
    w = Wire()
    d1 = w.proto.action("Ping")
    d2 = w.proto.action("QueuePause", {"Interface": "Local/1001@agent-connect"}, Paused="true")
    a1, a2 = w.sent()
    assert a1.action_id != a2.action_id
    assert a2.headers[2:] == [("Interface", "Local/1001@agent-connect"), ("Paused", "true")]
    # Answers may come in any order.
    w.answer(a2, "Success", "Message: Interface paused successfully")
    w.answer(a1, "Success", "Ping: Pong")
    assert result_of(d1)["Ping"] == "Pong"
    assert result_of(d2)["Message"] == "Interface paused successfully"
    assert w.proto.pending_actions == 0


def test_action_id_cannot_be_given_and_headers_cannot_inject() -> None:
    w = Wire()
    assert result_of(w.proto.action("Ping", ActionID="mine")).check(ValueError)
    assert result_of(w.proto.action("QueuePause", Reason="x\r\nAction: Logoff")).check(ValueError)
    assert w.transport.value() == b""


def test_error_response_errbacks_with_the_message() -> None:
    w = Wire()
    d = w.proto.action("QueuePause", Interface="Local/9@agent-connect", Paused="true")
    w.answer(w.last(), "Error", "Message: Interface not found")
    f = result_of(d)
    assert f.check(AMIError) and str(f.value) == "Interface not found"


def test_error_without_message_still_says_what_failed() -> None:
    w = Wire()
    d = w.proto.action("Bogus")
    w.answer(w.last(), "Error")
    assert str(result_of(d).value) == "Bogus failed: Response: Error"


@pytest.mark.parametrize("chunk", [None, 1, 13])
def test_list_action_collects_until_complete_with_events_interleaved(chunk: int | None) -> None:
    w = Wire()
    d = w.proto.list_action("QueueStatus")
    qs = w.last()
    answer = retag(trace_messages("startup-status.ami", "cti-2"), qs.action_id)
    # An unrelated event in the middle of the list goes to the listeners.
    head, sep, tail = answer.partition(b"Event: QueueEntry")
    w.recv(head + QUEUE_CALLER_JOIN + sep + tail, chunk)
    items = result_of(d)
    assert [m.name for m in items] == [
        "Success", "QueueParams", "QueueMember", "QueueMember", "QueueMember",
        "QueueEntry", "QueueEntry", "QueueParams", "QueueStatusComplete"]
    assert items[0]["EventList"] == "start" and items[-1]["ListItems"] == "7"
    assert items[2]["Name"] == "1001" and items[2]["InCall"] == "1"
    assert [e.name for e in w.events] == ["QueueCallerJoin"]
    assert w.proto.pending_actions == 0


def test_a_pending_ping_changes_nothing_for_events_and_lists() -> None:
    """Events carry our ActionID only as a list action's items: a plain action
    pending (a Ping whose answer waits behind a busy stream) leaves events to
    the listeners, ActionID or not, and a list sent meanwhile still collects."""
    w = Wire()
    ping = w.proto.action("Ping")
    ping_id = w.last().action_id
    # An event that happens to carry the Ping's ActionID is no answer to it.
    tagged = QUEUE_CALLER_JOIN.replace(b"\r\n\r\n", f"\r\nActionID: {ping_id}\r\n\r\n".encode())
    w.recv(QUEUE_CALLER_JOIN + tagged)
    assert [e.name for e in w.events] == ["QueueCallerJoin"] * 2
    d = w.proto.list_action("QueueStatus")
    answer = retag(trace_messages("startup-status.ami", "cti-2"), w.last().action_id)
    w.recv(QUEUE_CALLER_JOIN + answer)
    assert [m.name for m in result_of(d)][-1] == "QueueStatusComplete"
    assert len(w.events) == 3
    w.answer(Message.of(("ActionID", ping_id)), "Success")
    assert result_of(ping).name == "Success"
    assert w.proto.pending_actions == 0


def test_list_action_with_a_recorded_final_status() -> None:
    w = Wire()
    d = w.proto.list_action("QueueStatus", Queue="q-callcenter")
    w.recv(retag(trace_bytes("answered.final-status.ami"), w.last().action_id), 1)
    items = result_of(d)
    assert items[0].name == "Success" and items[-1].name == "QueueStatusComplete"
    assert len(items) == int(items[-1]["ListItems"]) + 2


def test_list_action_error() -> None:
    w = Wire()
    d = w.proto.list_action("QueueStatus")
    w.answer(w.last(), "Error", "Message: Permission denied")
    assert str(result_of(d).value) == "Permission denied"


def test_list_action_answered_without_a_list_completes_at_once() -> None:
    w = Wire()
    d = w.proto.list_action("QueueStatus")
    w.answer(w.last(), "Success", "Message: No queues")
    assert [m["Message"] for m in result_of(d)] == ["No queues"]


def test_old_list_without_eventlist_headers_ends_at_its_complete_event() -> None:
    w = Wire()
    d = w.proto.list_action("QueueStatus")
    aid = w.last().action_id
    w.recv(
        f"Response: Success\r\nActionID: {aid}\r\nMessage: Queue status will follow\r\n\r\n"
        f"Event: QueueParams\r\nQueue: q\r\nActionID: {aid}\r\n\r\n"
        f"Event: QueueStatusComplete\r\nActionID: {aid}\r\n\r\n".encode())
    assert [m.name for m in result_of(d)] == ["Success", "QueueParams", "QueueStatusComplete"]


def test_pending_actions_fail_when_the_connection_drops() -> None:
    w = Wire()
    d1 = w.proto.action("Ping")
    d2 = w.proto.list_action("QueueStatus")
    w.sent()
    w.recv(b"Response: Success\r\nActionID: " + w.proto._prefix.encode() + b"2\r\nEventList: start\r\n\r\n")
    w.proto.connectionLost(Failure(ConnectionLost("gone")))
    for d in (d1, d2):
        f = result_of(d)
        assert f.check(AMIConnectionLost)
        assert "gone" in str(f.value)
    assert w.proto.pending_actions == 0
    assert result_of(w.proto.action("Ping")).check(AMIConnectionLost)


def test_cancelled_action_is_forgotten_and_its_late_answer_ignored(logs) -> None:
    w = Wire()
    d = w.proto.action("Ping")
    ping = w.last()
    d.cancel()
    d.addErrback(lambda f: None)
    assert w.proto.pending_actions == 0
    w.answer(ping, "Success", "Ping: Pong")
    assert logs.matching("no such pending action")


def test_originate_response_with_another_clients_action_id_is_an_event() -> None:
    w = Wire(wanted={"OriginateResponse"})
    d = w.proto.list_action("QueueStatus")
    w.sent()
    w.recv(b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: drv-2\r\nResponse: Success\r\nReason: 4\r\n\r\n")
    assert [e["ActionID"] for e in w.events] == ["drv-2"]
    assert not d.called
    d.cancel()
    d.addErrback(lambda f: None)


def test_event_carrying_a_plain_actions_id_is_dispatched() -> None:
    # Originate with Async: the OriginateResponse comes with our ActionID.
    w = Wire(wanted={"OriginateResponse"})
    d = w.proto.action("Originate", Channel="Local/113@public", Async="true")
    aid = w.last().action_id
    w.recv(f"Event: OriginateResponse\r\nActionID: {aid}\r\nReason: 4\r\n\r\n".encode())
    w.recv(f"Response: Success\r\nActionID: {aid}\r\nMessage: Originate successfully queued\r\n\r\n".encode())
    assert [e.name for e in w.events] == ["OriginateResponse"]
    assert result_of(d)["Message"] == "Originate successfully queued"


def test_unwanted_events_are_not_parsed(monkeypatch) -> None:
    parsed: list[str] = []

    def counting(real: Callable[..., Message]) -> Callable[..., Message]:
        def parse(text: str, *rest: str) -> Message:
            parsed.append(text.partition("\n")[0])
            return real(text, *rest)
        return parse

    for name in ("parse_text", "unchecked_text"):  # responses, events
        monkeypatch.setattr(protocol_module, name, counting(getattr(protocol_module, name)))
    w = Wire(wanted={"QueueCallerJoin"})
    w.recv(trace_bytes("answered.ami")[30:])  # past the banner
    assert {e.name for e in w.events} == {"QueueCallerJoin"}
    assert len(w.events) == 4
    # Only the 4 joins and the one (unsolicited) login response were parsed.
    assert sorted(set(parsed)) == ["Event: QueueCallerJoin", "Response: Success"]
    assert len(parsed) == 5
    assert w.proto.events_skipped == 582 - 4


def test_wanted_can_change_on_the_fly() -> None:
    w = Wire(wanted=set())
    w.recv(QUEUE_CALLER_JOIN)
    w.proto.wanted = {"QueueCallerJoin"}
    w.recv(QUEUE_CALLER_JOIN)
    w.proto.wanted = None
    w.recv(QUEUE_CALLER_JOIN)
    assert len(w.events) == 2


def test_fully_booted_is_noticed_even_when_nobody_listens() -> None:
    w = Wire(wanted=set())
    d = w.proto.when_booted()
    assert not d.called
    w.recv(b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n")
    assert result_of(d) is None
    assert result_of(w.proto.when_booted()) is None
    assert w.events == []


def test_command_output_old_and_new_style() -> None:
    w = Wire()
    d_old = w.proto.action("Command", Command="core show uptime")
    d_new = w.proto.action("Command", Command="core show uptime")
    old, new = w.sent()
    w.recv(
        f"Response: Follows\r\nPrivilege: Command\r\nActionID: {old.action_id}\r\n"
        "System uptime: 5 minutes\r\n\r\nLast reload: 5 minutes\r\n--END COMMAND--\r\n\r\n".encode(), 3)
    w.answer(new, "Success", "Message: Command output follows",
             "Output: System uptime: 5 minutes", "Output: Last reload: 5 minutes")
    assert result_of(d_old).output == ["System uptime: 5 minutes", "", "Last reload: 5 minutes"]
    assert result_of(d_new).output == ["System uptime: 5 minutes", "Last reload: 5 minutes"]


class TestBadInput:
    def test_garbage_bytes_are_skipped_and_logged_once(self, logs) -> None:
        w = Wire()
        garbage = bytes(range(256)).replace(b"\n", b"") + b"\r\n\r\n"
        for _ in range(1000):
            w.recv(garbage)
        w.recv(QUEUE_CALLER_JOIN)
        assert [e.name for e in w.events] == ["QueueCallerJoin"]
        junk_lines = logs.matching("malformed AMI message")
        assert len(junk_lines) == 1
        assert w.proto.junk_skipped == 1000
        # At the end of the minute, one line counts those suppressed; then the next is logged.
        w.clock.advance(61)
        assert logs.matching("999 more like this in the last 60 s: Skipped a malformed AMI message")
        w.recv(garbage)
        assert len(logs.matching("malformed AMI message")) == 3
        assert w.proto.connected

    def test_garbage_glued_to_a_message_is_cut_off(self, logs) -> None:
        w = Wire()
        w.recv(b"\x00\x01garbage line\r\nmore: junk\r\n" + QUEUE_CALLER_JOIN, 1)
        assert [e["Queue"] for e in w.events] == ["q-callcenter"]
        assert logs.matching("bytes of non-AMI data")

    def test_line_without_colon_is_skipped_and_the_event_kept(self, logs) -> None:
        w = Wire()
        w.recv(b"Event: QueueCallerJoin\r\nthis line has no colon\r\nQueue: q-callcenter\r\n\r\n")
        assert w.events[0]["Queue"] == "q-callcenter"
        assert len(logs.matching("without a colon")) == 1

    def test_non_utf8_is_replaced_and_logged(self, logs) -> None:
        w = Wire()
        w.recv(b"Event: QueueCallerJoin\r\nCallerIDName: Jos\xe9 \xff\r\nQueue: q-callcenter\r\n\r\n")
        w.recv(QUEUE_CALLER_JOIN)
        assert w.events[0]["CallerIDName"] == "Jos\ufffd \ufffd"
        assert w.events[1]["Queue"] == "q-callcenter"
        assert len(logs.matching("Non-UTF-8")) == 1

    def test_non_utf8_junk_is_junk_and_the_event_beside_it_is_kept(self, logs) -> None:
        # In one chunk, as one read: the chunk is not UTF-8, so it is decoded block by block.
        w = Wire()
        w.recv(b"\x00\xff\xfe garbage\r\n\r\n"
               b"Event: QueueCallerJoin\r\nCallerIDName: Jos\xe9\r\nQueue: q-callcenter\r\n\r\n"
               + QUEUE_CALLER_JOIN)
        assert [e["Queue"] for e in w.events] == ["q-callcenter", "q-callcenter"]
        assert w.events[0]["CallerIDName"] == "Jos\ufffd"
        assert len(logs.matching("malformed AMI message")) == 1
        [warning] = logs.matching("Non-UTF-8")
        assert "'Event: QueueCallerJoin'" in warning

    def test_unknown_event_is_ignored(self) -> None:
        w = Wire(wanted={"QueueCallerJoin"})
        w.recv(b"Event: SomethingNew\r\nFoo: bar\r\n\r\n" + QUEUE_CALLER_JOIN)
        assert [e.name for e in w.events] == ["QueueCallerJoin"]
        assert w.proto.events_skipped == 1

    def test_a_1mib_line_aborts_the_connection_once(self, logs) -> None:
        w = Wire()
        w.recv(QUEUE_CALLER_JOIN + b"X" * (1 << 20) + b"\r\n" + QUEUE_CALLER_JOIN, 65536)
        assert len(w.events) == 1  # the event before the line; framing is lost after it
        assert w.transport.disconnecting
        assert len(logs.matching("framing lost")) == 1
        w.recv(QUEUE_CALLER_JOIN)  # whatever still arrives before the close is ignored
        assert len(w.events) == 1

    def test_a_1mib_line_in_one_read_also_aborts(self, logs) -> None:
        w = Wire()
        w.recv(QUEUE_CALLER_JOIN + b"X" * (1 << 20) + b"\r\n\r\n" + QUEUE_CALLER_JOIN)
        assert len(w.events) == 1
        assert w.transport.disconnecting

    def test_a_failing_dispatch_never_escapes_data_received(self, logs) -> None:
        calls: list[str] = []

        def dispatch(msg: Message) -> None:
            calls.append(msg.name)
            raise RuntimeError("listener bug")

        proto = AMIProtocol(dispatch, clock=Clock())
        proto.makeConnection(StringTransport())
        proto.dataReceived(BANNER + QUEUE_CALLER_JOIN * 3)
        assert calls == ["QueueCallerJoin"] * 3
        assert len(logs.matching("Error while handling AMI message")) == 1
        assert proto.connected


def test_a_message_without_its_blank_line_does_not_swallow_the_next() -> None:
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from callcenter.ami.protocol import AMIProtocol

    got: list = []
    proto = AMIProtocol(got.append, clock=Clock())
    proto.makeConnection(StringTransport())
    proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
    proto.dataReceived(
        b"Event: QueueCallerJoin\r\nQueue: q\r\nUniqueid: 1.1\r\n"  # no blank line here
        b"Event: QueueCallerLeave\r\nQueue: q\r\nUniqueid: 1.1\r\n\r\n"
    )
    assert [(m.event, m.get("Uniqueid")) for m in got] == [
        ("QueueCallerJoin", "1.1"), ("QueueCallerLeave", "1.1")]
    assert proto.glued_messages == 1 and proto.connected


def test_a_list_answer_that_never_ends_is_bounded() -> None:
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from callcenter.ami.protocol import AMIProtocol

    proto = AMIProtocol(lambda m: None, clock=Clock())
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
    proto.max_list_items = 50
    d = proto.list_action("QueueStatus")
    aid = transport.value().split(b"ActionID: ")[1].split(b"\r\n")[0]
    errors: list = []
    d.addErrback(errors.append)
    proto.dataReceived(b"Response: Success\r\nActionID: " + aid + b"\r\nEventList: start\r\n\r\n")
    item = b"Event: QueueMember\r\nQueue: q\r\nName: 1\r\nActionID: " + aid + b"\r\n\r\n"
    proto.dataReceived(item * 60)
    assert errors and "more than 50" in str(errors[0].value)
    assert transport.disconnecting or not proto.connected
