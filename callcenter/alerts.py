"""The page's alert thresholds (``--alert-*``): parsed and checked once, sent
to every dashboard in the CONFIG object's ``alerts`` key (docs/operations.md).

A threshold of 0 (or an empty ``--alert-pause-minutes``) is off; the page
evaluates them against the figures it already has, so they cost the server
nothing per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_PAUSE_MINUTES = 24 * 60
MAX_REASONS = 64  # distinct reasons in --alert-pause-minutes
MAX_REASON = 64  # the server's own limit on a pause reason
ANY_REASON = "*"


@dataclass(frozen=True)
class AlertThresholds:
    waiting: int = 0  # calls waiting in a queue (or in all) above this: alert
    longest_wait: int = 0  # seconds the longest caller has waited above this
    sla: float = 0.0  # percent: today's SLA below this (once a call was answered)
    pause_minutes: dict[str, int] = field(default_factory=dict)  # reason (or "*") → minutes

    def to_json(self) -> dict[str, Any]:
        return {
            "waiting": self.waiting or None,
            "longest_wait": self.longest_wait or None,
            "sla": self.sla or None,
            "pause_minutes": dict(self.pause_minutes),
        }


def parse_pause_minutes(text: str) -> dict[str, int]:
    """``"Lunch=60,Break=15,*=10"`` → ``{"Lunch": 60, "Break": 15, "*": 10}``;
    a bare number is ``*=N`` (every reason, and a pause without one).
    Raises ValueError with the reason of the refusal."""
    text = (text or "").strip()
    if not text:
        return {}
    if text.isdigit():
        text = f"{ANY_REASON}={text}"
    out: dict[str, int] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        reason, sep, minutes = part.rpartition("=")
        reason = reason.strip()
        minutes = minutes.strip()
        if not sep or not reason:
            raise ValueError(f"{part!r} is not REASON=MINUTES")
        if len(reason) > MAX_REASON or not reason.isprintable():
            raise ValueError(f"reason {reason[:20]!r}… must be at most {MAX_REASON} printable characters")
        if not (minutes.isascii() and minutes.isdigit()) or not 0 < int(minutes) <= MAX_PAUSE_MINUTES:
            raise ValueError(f"{reason}: minutes must be a whole number from 1 to {MAX_PAUSE_MINUTES}, not {minutes!r}")
        if reason in out:
            raise ValueError(f"reason {reason!r} given twice")
        out[reason] = int(minutes)
        if len(out) > MAX_REASONS:
            raise ValueError(f"at most {MAX_REASONS} reasons")
    return out
