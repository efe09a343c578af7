"""AMI list answers framed as Asterisk writes them (REFERENCE.md gotcha 11).

The PBX's truth itself comes from tests/support/pbxstate.py, an independent
model of app_queue, never from a Callcenter.
"""

from __future__ import annotations

from callcenter.ami.message import Message, format_message


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
