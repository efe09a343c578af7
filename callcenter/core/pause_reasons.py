"""The configured pause reasons (``--pause-reasons``, ``--pause-free-text``).

One object says how a reason is spelled and whether the dashboard may send
it: reasons compare case-insensitively, and one that matches a configured
reason is shown (and sent to Asterisk) in the configured spelling, whether it
came from the page or from an agent's phone.
"""

from __future__ import annotations

DEFAULT_REASONS = ("Break", "Lunch", "Training", "Coaching")
MAX_REASONS = 32  # the page shows them as buttons


class UnknownReason(ValueError):
    """A dashboard's pause reason that is not one of the configured ones."""


class PauseReasons:
    __slots__ = ("reasons", "free_text", "_by_key")

    def __init__(self, reasons: tuple[str, ...] = DEFAULT_REASONS, free_text: bool = False) -> None:
        self.reasons = tuple(reasons)
        self.free_text = free_text
        self._by_key = {r.casefold(): r for r in self.reasons}

    def spelled(self, reason: str) -> str:
        """``reason`` in the configured spelling when it is a configured one, else as given."""
        return self._by_key.get(reason.casefold(), reason) if reason else reason

    def check(self, reason: str) -> str:
        """A dashboard's reason, spelled as configured; raises UnknownReason when it
        is not configured and free text is off.  No reason at all is always allowed."""
        if not reason:
            return reason
        known = self._by_key.get(reason.casefold())
        if known is not None:
            return known
        if self.free_text:
            return reason
        raise UnknownReason(
            f"unknown pause reason {reason[:32]!r}: use one of {', '.join(self.reasons)}"
        )


def parse_reasons(text: str, max_length: int = 64) -> tuple[str, ...]:
    """``--pause-reasons``: comma-separated, each printable, at most ``max_length``
    characters, no duplicates (ignoring case); raises ValueError with the reason."""
    reasons = tuple(r.strip() for r in text.split(",") if r.strip())
    if len(reasons) > MAX_REASONS:
        raise ValueError(f"at most {MAX_REASONS} pause reasons, not {len(reasons)}")
    seen: set[str] = set()
    for r in reasons:
        if len(r) > max_length or not r.isprintable():
            raise ValueError(f"pause reason {r[:32]!r} must be at most {max_length} printable characters")
        if r.casefold() in seen:
            raise ValueError(f"pause reason {r!r} is given twice")
        seen.add(r.casefold())
    return reasons
