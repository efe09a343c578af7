"""Dashboard → server frames of the WebSocket protocol (DESIGN.md).

``HELLO``, ``AVAIL:<agentid>``, ``PAUSE:<agentid>`` and ``PAUSE:<agentid>:<reason>``.
Parsing is strict about content (the reason ends up in an AMI header, so no
control characters and a bounded length) but lenient about the trailing
whitespace/newline that the original dashboards send.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from callcenter.center import MAX_REASON  # the center refuses longer reasons too

MAX_AGENTID = 128
# Control characters and line/paragraph separators: CR/LF would inject AMI headers.
_BAD_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


class BadCommand(ValueError):
    """A frame that is not a valid command; str() is the message sent back."""


@dataclass(frozen=True)
class Hello:
    pass


@dataclass(frozen=True)
class Pause:
    agentid: str
    reason: str = ""


@dataclass(frozen=True)
class Avail:
    agentid: str


Command = Hello | Pause | Avail


def parse_command(text: str) -> Command:
    frame = text.rstrip(" \t\r\n")
    if not frame:
        raise BadCommand("empty frame")
    if frame == "HELLO":
        return Hello()
    verb, sep, rest = frame.partition(":")
    if verb == "AVAIL" and sep:
        return Avail(_agentid(rest, verb))
    if verb == "PAUSE" and sep:
        agentid, _, reason = rest.partition(":")
        return Pause(_agentid(agentid, verb), _reason(reason))
    raise BadCommand(f"unknown command {_preview(frame)}")


def _agentid(value: str, verb: str) -> str:
    if not value:
        raise BadCommand(f"{verb} needs an agent id")
    # Ids are MemberNames (or interfaces, e.g. "Local/1001@agent-connect"):
    # any printable text; the center says whether it knows it.
    if len(value) > MAX_AGENTID or _has_control(value):
        raise BadCommand(f"bad agent id {_preview(value)}")
    return value


def _reason(value: str) -> str:
    value = value.strip(" \t")
    if _has_control(value):
        raise BadCommand("pause reason contains control characters")
    if len(value) > MAX_REASON:
        raise BadCommand(f"pause reason longer than {MAX_REASON} characters")
    return value


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in value)


def _preview(value: str, limit: int = 32) -> str:
    """A short, printable echo of client input for error messages."""
    short = value if len(value) <= limit else value[:limit] + "…"
    return repr(short)
