"""A loopback AMI server that plays a PBX: it answers Login, Ping, CoreShowChannels
and QueueStatus (with a given state of the PBX), then streams recorded events.

Timestamps in the events are shifted by ``shift`` seconds so the service,
which runs on the real clock, accepts them (it ignores a Timestamp more than
a day from its own clock).
"""

from __future__ import annotations

import re

from twisted.internet.protocol import Factory, Protocol

from callcenter.ami.message import Message, Splitter, format_message, parse_message

from .pbx import list_response

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_TS = re.compile(rb"(?m)^Timestamp: (\d+\.\d+)")


def shifted(block: bytes, shift: int) -> bytes:
    return _TS.sub(lambda m: b"Timestamp: %.6f" % (float(m.group(1)) + shift), block)


def shift_message(msg: Message, shift: int) -> Message:
    return Message(
        [(k, f"{float(v) + shift:.6f}" if k == "Timestamp" else v) for k, v in msg.headers]
    )


class PBXPeer(Protocol):
    factory: PBX

    def connectionMade(self) -> None:
        self.splitter = Splitter(expect_banner=False)
        self.factory.peers.append(self)
        self.transport.write(BANNER)

    def connectionLost(self, reason: object) -> None:
        if self in self.factory.peers:
            self.factory.peers.remove(self)

    def dataReceived(self, data: bytes) -> None:
        for block in self.splitter.feed(data):
            self.handle(parse_message(block))

    def reply(self, *pairs: tuple[str, str]) -> None:
        self.transport.write(format_message(pairs))

    def handle(self, action: Message) -> None:
        name = (action.get("Action") or "").lower()
        aid = action.get("ActionID") or ""
        self.factory.actions.append(name)
        if name == "login":
            if action.get("Secret") != self.factory.secret:
                self.reply(
                    ("Response", "Error"), ("ActionID", aid), ("Message", "Authentication failed")
                )
                return
            self.reply(
                ("Response", "Success"), ("ActionID", aid), ("Message", "Authentication accepted")
            )
            self.reply(
                ("Event", "FullyBooted"), ("Privilege", "system,all"), ("Status", "Fully Booted")
            )
        elif name == "ping":
            self.reply(
                ("Response", "Success"), ("ActionID", aid), ("Ping", "Pong"), ("Timestamp", "0")
            )
        elif name == "coreshowchannels":
            self.transport.write(
                list_response(
                    aid, "CoreShowChannelsComplete", self.factory.channels, "Channels will follow"
                )
            )
        elif name == "queuestatus":
            self.transport.write(
                list_response(
                    aid, "QueueStatusComplete", self.factory.items, "Queue status will follow"
                )
            )
            # The PBX's events after the snapshot follow it, as on a real Asterisk.
            if not self.factory.streamed:
                self.factory.streamed = True
                self.transport.write(b"".join(self.factory.events))
        else:
            self.reply(
                ("Response", "Error"), ("ActionID", aid), ("Message", "Invalid/unknown command")
            )


class PBX(Factory):
    protocol = PBXPeer

    def __init__(
        self,
        secret: str,
        events: list[bytes],
        items: list[Message] = (),  # type: ignore[assignment]
        channels: list[Message] = (),  # type: ignore[assignment]
    ) -> None:
        self.secret = secret
        self.events = events
        self.items = list(items)
        self.channels = list(channels)
        self.streamed = False
        self.actions: list[str] = []
        self.peers: list[PBXPeer] = []
