"""Screen pop: the CRM address an agent's page opens for the call it takes.

``--screen-pop-url 'https://crm.example/search?phone={callerid}&call={uniqueid}'``
is checked once, at start (``ScreenPop.parse``: a ``ValueError`` with one
line, which the options turn into a usage error): only ``http``/``https``,
a literal host (no placeholder before the path, so a caller id can never
choose where the agent's browser goes), known ``{names}`` only, and no
format specs or conversions.  ``url()`` fills it with each value
percent-encoded (``quote(safe="")``: ``/ ? & # + %`` and spaces become
``%XX``), so a caller's number or name can add neither a parameter nor a path.

The filled address goes only where the call's CONNECT goes
(``decorate``): the agent who takes the call and the views that already see
its caller number.  Never logged.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

#: The {names} a template may use, and what each is filled with.
PLACEHOLDERS = {
    "callerid": "the caller's number (CallerIDNum)",
    "callername": "the caller's name (CallerIDName), empty when unknown",
    "queue": "the queue the call was answered in",
    "uniqueid": "the call's id (the caller channel's Asterisk Uniqueid)",
    "agent": "the agent id that took the call",
    "hold": "seconds the caller waited before the answer",
}
MAX_TEMPLATE = 2048  # characters; a longer --screen-pop-url is refused
MAX_URL = 8192  # characters of a filled address; past it no screen pop is offered

# scheme://host[:port] followed by the start of a path, query or fragment,
# all before the first placeholder: the host is the template's, never a value's.
_ORIGIN = re.compile(r"(?i)^(https?)://([^/?#{}\s\\]+)[/?#]")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class ScreenPop:
    """A checked template; ``auto`` asks the page to open it when the call connects."""

    template: str
    auto: bool = False

    @classmethod
    def parse(cls, template: str, auto: bool = False) -> ScreenPop:
        """The template, or ValueError saying what is wrong with it."""
        if not template or len(template) > MAX_TEMPLATE:
            raise ValueError(f"--screen-pop-url must be 1 to {MAX_TEMPLATE} characters")
        if _CONTROL.search(template):
            raise ValueError("--screen-pop-url must not contain spaces or control characters "
                             "(write them percent-encoded)")
        if not _ORIGIN.match(template):
            raise ValueError(
                f"--screen-pop-url {template[:80]!r} must start with http:// or https://, a host, "
                "then /, ? or # before any {placeholder}")
        try:
            fields = list(string.Formatter().parse(template))
        except ValueError as e:
            raise ValueError(f"--screen-pop-url: {e} (write a literal brace as {{{{ or }}}})") from None
        for _literal, name, spec, conversion in fields:
            if name is None:
                continue
            if name not in PLACEHOLDERS:
                raise ValueError(f"--screen-pop-url: unknown placeholder {{{name}}}; known: "
                                 + ", ".join(f"{{{n}}}" for n in PLACEHOLDERS))
            if spec or conversion:
                raise ValueError(f"--screen-pop-url: {{{name}}} takes no format or conversion")
        sample = cls(template, auto).url(dict.fromkeys(PLACEHOLDERS, "x"))
        parts = urlsplit(sample or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--screen-pop-url {template[:80]!r} is not an http(s) address")
        return cls(template, auto)

    def url(self, values: dict[str, Any]) -> str | None:
        """The template filled with ``values`` (missing ones empty), or None if too long."""
        encoded = {name: quote(_text(values.get(name)), safe="") for name in PLACEHOLDERS}
        filled = self.template.format_map(encoded)
        return filled if len(filled) <= MAX_URL else None

    def decorate(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A CONNECT in progress gets ``screen_pop`` (its filled address); anything else is returned as is."""
        if obj.get("type") != "CONNECT" or obj.get("status") == "HANGUP":
            return obj
        url = self.url(connect_values(obj))
        return obj if url is None else {**obj, "screen_pop": url}


def connect_values(connect: dict[str, Any]) -> dict[str, Any]:
    """The placeholders' values for a CONNECT object (DESIGN.md)."""
    call = connect.get("call") or {}
    agent = connect.get("agent") or {}
    return {
        "callerid": call.get("callerid"),
        "callername": call.get("callername"),
        "queue": connect.get("queue"),
        "uniqueid": connect.get("id"),
        "agent": agent.get("agentid"),
        "hold": call.get("hold"),
    }


def _text(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return ""
    return str(value)
