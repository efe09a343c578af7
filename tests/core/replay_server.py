"""A loopback AMI peer that replays a recorded trace to the service's real client.

It speaks like Asterisk: banner, Login, FullyBooted, Ping; it answers the
service's ``CoreShowChannels``/``QueueStatus`` with the PBX's state at the
start of the recording (empty, or the recorded answers for startup-status),
then writes the recorded messages, and finally a ``ReplayDone`` event so the
test knows everything before it has been dispatched.
"""

from __future__ import annotations

from support.amipeer import AsteriskManager, AsteriskManagerFactory, fully_booted, retag
from twisted.internet.protocol import Factory

from callcenter.ami.message import Message, format_message

from .traces import Trace

__all__ = ["OneByteEndpoint", "ReplayFactory", "retag"]

DONE = b"Event: ReplayDone\r\nPrivilege: system,all\r\n\r\n"


def _empty_list(complete: str) -> bytes:
    return format_message(
        [("Response", "Success"), ("ActionID", "x"), ("EventList", "start"), ("Message", "will follow")]
    ) + format_message(
        [("Event", complete), ("ActionID", "x"), ("EventList", "Complete"), ("ListItems", "0")]
    )


class ReplayFactory(AsteriskManagerFactory):
    booted_event = fully_booted(4)

    def __init__(self, trace: Trace, secret: str = "s3cret", answers: dict[str, bytes] | None = None) -> None:
        super().__init__(secret=secret)
        self.trace = trace
        self.streamed = 0
        self.answers = answers or {
            "coreshowchannels": _empty_list("CoreShowChannelsComplete"),
            "queuestatus": _empty_list("QueueStatusComplete"),
        }

    def answered(self, conn: AsteriskManager, msg: Message) -> None:
        if (msg.get("Action") or "").lower() == "queuestatus":
            self.stream(conn)

    def stream(self, peer: AsteriskManager) -> None:
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
