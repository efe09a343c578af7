"""A loopback AMI peer that replays a recorded trace to the service's real client.

It speaks like Asterisk: banner, Login, FullyBooted, Ping; it answers the
service's ``CoreShowChannels``/``QueueStatus`` with the PBX's state at the
start of the recording (empty, or the recorded answers for startup-status),
then writes the recorded messages, and finally a ``ReplayDone`` event so the
test knows everything before it has been dispatched.
"""

from __future__ import annotations

import re

from twisted.internet.protocol import Factory, Protocol

from callcenter.ami.message import Message, Splitter, format_message, parse_message

from .traces import Trace

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
DONE = b"Event: ReplayDone\r\nPrivilege: system,all\r\n\r\n"


def retag(block: bytes, action_id: str) -> bytes:
    return re.sub(rb"(?m)^ActionID: [^\r\n]*", b"ActionID: " + action_id.encode(), block)


class ReplayPeer(Protocol):
    factory: ReplayFactory

    def connectionMade(self) -> None:
        self.splitter = Splitter(expect_banner=False)
        self.logged_in = False
        self.transport.write(BANNER)

    def dataReceived(self, data: bytes) -> None:
        for block in self.splitter.feed(data):
            self.handle(parse_message(block))

    def reply(self, *pairs: tuple[str, str]) -> None:
        self.transport.write(format_message(pairs))

    def handle(self, action: Message) -> None:
        name = (action.get("Action") or "").lower()
        aid = action.get("ActionID") or ""
        self.factory.actions.append(action)
        if name == "login":
            if action.get("Secret") != self.factory.secret:
                self.reply(("Response", "Error"), ("ActionID", aid), ("Message", "Authentication failed"))
                self.transport.loseConnection()
                return
            self.logged_in = True
            self.reply(("Response", "Success"), ("ActionID", aid), ("Message", "Authentication accepted"))
            self.transport.write(
                b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 4\r\nLastReload: 4\r\n"
                b"Status: Fully Booted\r\n\r\n"
            )
        elif name == "ping":
            self.reply(("Response", "Success"), ("ActionID", aid), ("Ping", "Pong"), ("Timestamp", "0"))
        elif name in self.factory.answers:
            self.transport.write(retag(self.factory.answers[name], aid))
            if name == "queuestatus":
                self.factory.stream(self)
        else:
            self.reply(("Response", "Error"), ("ActionID", aid), ("Message", "Invalid/unknown command"))


def _empty_list(complete: str) -> bytes:
    return format_message(
        [("Response", "Success"), ("ActionID", "x"), ("EventList", "start"), ("Message", "will follow")]
    ) + format_message(
        [("Event", complete), ("ActionID", "x"), ("EventList", "Complete"), ("ListItems", "0")]
    )


class ReplayFactory(Factory):
    protocol = ReplayPeer

    def __init__(self, trace: Trace, secret: str = "s3cret", answers: dict[str, bytes] | None = None) -> None:
        self.trace = trace
        self.secret = secret
        self.actions: list[Message] = []
        self.streamed = 0
        self.answers = answers or {
            "coreshowchannels": _empty_list("CoreShowChannelsComplete"),
            "queuestatus": _empty_list("QueueStatusComplete"),
        }

    def stream(self, peer: ReplayPeer) -> None:
        """Write the recording (once per factory: a reconnect does not replay it again)."""
        if self.streamed:
            return
        self.streamed += 1
        chunks = []
        for i in self.trace.idx:
            if i["kind"] == "Banner" or i["kind"] == "Response" or i["name"] == "FullyBooted":
                continue  # the recording's own login exchange
            if i["ActionID"]:
                continue  # answers to the recording session's actions
            chunks.append(self.trace.message_bytes(i))
        chunks.append(DONE)
        peer.transport.write(b"".join(chunks))


class OneByteAtATime(Factory):
    """Wraps the client's factory so its protocol receives every byte alone."""

    def __init__(self, wrapped: Factory) -> None:
        self.wrapped = wrapped

    def buildProtocol(self, addr):  # noqa: ANN001, ANN201
        proto = self.wrapped.buildProtocol(addr)
        if proto is None:
            return None
        whole = proto.dataReceived

        def one_byte(data: bytes) -> None:
            for k in range(len(data)):
                whole(data[k : k + 1])

        proto.dataReceived = one_byte
        return proto


class OneByteEndpoint:
    def __init__(self, endpoint) -> None:  # noqa: ANN001
        self.endpoint = endpoint

    def connect(self, factory):  # noqa: ANN001, ANN201
        return self.endpoint.connect(OneByteAtATime(factory))
