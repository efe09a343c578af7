"""A loopback AMI server that plays a PBX: it answers Login, Ping, CoreShowChannels
and QueueStatus (with a given state of the PBX), then streams recorded events.

Timestamps in the events are shifted by ``shift`` seconds so the service,
which runs on the real clock, accepts them (it ignores a Timestamp more than
a day from its own clock).
"""

from __future__ import annotations

import re

from support.amipeer import AsteriskManager, AsteriskManagerFactory

from callcenter.ami.message import Message

from .pbx import list_response

_TS = re.compile(rb"(?m)^Timestamp: (\d+\.\d+)")


def shifted(block: bytes, shift: int) -> bytes:
    return _TS.sub(lambda m: b"Timestamp: %.6f" % (float(m.group(1)) + shift), block)


def shift_message(msg: Message, shift: int) -> Message:
    return Message(
        [(k, f"{float(v) + shift:.6f}" if k == "Timestamp" else v) for k, v in msg.headers]
    )


class PBX(AsteriskManagerFactory):
    """Logs in on ``secret`` alone (after a wrong one the line stays up); the
    recorded events follow the first QueueStatus answer."""

    close_on_reject = False
    forget_closed = True

    def __init__(
        self,
        secret: str,
        events: list[bytes],
        items: list[Message] = (),  # type: ignore[assignment]
        channels: list[Message] = (),  # type: ignore[assignment]
    ) -> None:
        super().__init__(secret=secret)
        self.events = events
        self.items = list(items)
        self.channels = list(channels)
        self.streamed = False
        self.actions: list[str] = []  # lower-case action names
        self.peers = self.connections
        self.answers["CoreShowChannels"] = lambda _conn, action: list_response(
            action.action_id or "", "CoreShowChannelsComplete", self.channels, "Channels will follow"
        )
        self.answers["QueueStatus"] = lambda _conn, action: list_response(
            action.action_id or "", "QueueStatusComplete", self.items, "Queue status will follow"
        )

    def record(self, msg: Message) -> None:
        self.actions.append((msg.get("Action") or "").lower())

    def answered(self, conn: AsteriskManager, msg: Message) -> None:
        # The PBX's events after the snapshot follow it, as on a real Asterisk.
        if (msg.get("Action") or "").lower() == "queuestatus" and not self.streamed:
            self.streamed = True
            conn.send(b"".join(self.events))
