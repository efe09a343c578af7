"""A loopback AMI peer that replays a recorded trace to the service's real client.

It is the tests' fake Asterisk (support/fake_asterisk.py: banner, Login,
FullyBooted, Ping) answering the service's ``CoreShowChannels``/``QueueStatus``
with the PBX's state at the start of the recording (empty, or the recorded
answers for startup-status); after the QueueStatus answer it writes the
recorded messages, and finally a ``ReplayDone`` event so the test knows
everything before it has been dispatched.
"""

from __future__ import annotations

from support.fake_asterisk import AsteriskManagerFactory, fully_booted, list_answer, retag
from twisted.internet.protocol import Factory

from .traces import Trace

__all__ = ["OneByteEndpoint", "replay_pbx", "retag"]

DONE = b"Event: ReplayDone\r\nPrivilege: system,all\r\n\r\n"


def recording(trace: Trace) -> bytes:
    """The trace's events, without the recording session's own login and answers."""
    chunks = []
    for i in trace.idx:
        if i["kind"] == "Banner" or i["kind"] == "Response" or i["name"] == "FullyBooted":
            continue  # the recording's own login exchange
        if i["ActionID"]:
            continue  # answers to the recording session's actions
        chunks.append(trace.message_bytes(i))
    chunks.append(DONE)
    return b"".join(chunks)


def replay_pbx(trace: Trace, secret: str = "s3cret", answers: dict[str, bytes] | None = None) -> AsteriskManagerFactory:
    """The PBX of the recording: its events follow the first QueueStatus answer
    (once per PBX: a reconnect does not replay them again)."""
    pbx = AsteriskManagerFactory(secret=secret)
    pbx.booted_event = fully_booted(4)
    pbx.answers = dict(answers or {
        "CoreShowChannels": list_answer("x", "CoreShowChannelsComplete", [], "will follow"),
        "QueueStatus": list_answer("x", "QueueStatusComplete", [], "will follow"),
    })
    pbx.then_push("QueueStatus", recording(trace))
    return pbx


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
