"""What Asterisk would answer to QueueStatus / CoreShowChannels, derived from a
Callcenter that followed every event up to some instant (the PBX's state then).

Field names and shapes follow the traces' REFERENCE.md (gotchas 9 and 11):
QueueMember uses Name/Location, a connected caller is no QueueEntry but a
bridged channel, QueueEntry.Wait is in seconds.
"""

from __future__ import annotations

from callcenter.ami.message import Message, format_message
from callcenter.center import Callcenter
from callcenter.model import INCALL, NA, QUEUED


def _hms(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def pbx_status(center: Callcenter) -> tuple[list[Message], list[Message]]:
    now = center.clock.seconds()
    items: list[Message] = []
    channels: list[Message] = []
    for agent in center.agents.values():
        for queue, m in sorted(agent.queues.items()):
            login = str(int(agent.since))
            items.append(
                Message.of(
                    ("Event", "QueueMember"),
                    ("Queue", queue),
                    ("Name", agent.agentid),
                    ("Location", agent.interface),
                    ("StateInterface", agent.interface),
                    ("Membership", "dynamic"),
                    ("CallsTaken", str(agent.calls_taken)),
                    ("LastPause", login if agent.fresh_login else "0"),
                    ("LoginTime", login),
                    ("InCall", "1" if agent.call and agent.call_queue == queue else "0"),
                    ("Status", "2" if agent.call else "1"),
                    ("Paused", "1" if m.paused else "0"),
                    ("PausedReason", m.reason),
                )
            )
    for call in center.calls.values():
        if call.status == QUEUED:
            items.append(
                Message.of(
                    ("Event", "QueueEntry"),
                    ("Queue", call.queue),
                    ("Uniqueid", call.id),
                    ("Channel", call.channel),
                    ("CallerIDNum", call.callerid),
                    ("Wait", str(int(now - (call.entered or now)))),
                )
            )
        if call.status in (NA, QUEUED, INCALL):
            pairs = [
                ("Event", "CoreShowChannel"),
                ("Channel", call.channel),
                ("Uniqueid", call.id),
                ("CallerIDNum", call.callerid),
                ("Application", "Queue" if call.status != NA else "Wait"),
                ("ApplicationData", call.queue),
                ("Duration", _hms(now - (call.entered or call.since))),
            ]
            conn = center.connections.get(call.id)
            if conn is not None:
                pairs.append(("BridgeId", "bridge-" + call.id))
                agent = center.agents[conn.agentid]
                channels.append(
                    Message.of(
                        ("Event", "CoreShowChannel"),
                        ("Channel", agent.interface + "-0000ffff;1"),
                        ("Uniqueid", call.id + "-agent"),
                        ("Application", "AppQueue"),
                        ("Duration", _hms(now - conn.since)),
                        ("BridgeId", "bridge-" + call.id),
                    )
                )
            channels.append(Message.of(*pairs))
    return items, channels


def list_response(action_id: str, complete: str, items: list[Message], message: str) -> bytes:
    """An AMI list answer as Asterisk writes it: start, items (ActionID last), Complete."""
    out = format_message(
        [
            ("Response", "Success"),
            ("ActionID", action_id),
            ("EventList", "start"),
            ("Message", message),
        ]
    )
    for m in items:
        out += format_message([*m.headers, ("ActionID", action_id)])
    out += format_message(
        [
            ("Event", complete),
            ("ActionID", action_id),
            ("EventList", "Complete"),
            ("ListItems", str(len(items))),
        ]
    )
    return out
