"""The CONFIG object: what the page needs to know of the service's settings.

Sent in the HELLO reply, before STATS (docs/protocol.md).  Built here only,
so every task that adds a setting for the page adds it to this one function
(issue 15: the pause reasons; issue 13: the alert thresholds).
"""

from __future__ import annotations

from typing import Any

from callcenter.alerts import AlertThresholds
from callcenter.core.pause_reasons import PauseReasons


def config_object(
    pause_reasons: PauseReasons | None = None, alerts: AlertThresholds | None = None
) -> dict[str, Any]:
    reasons = pause_reasons or PauseReasons()
    return {
        "type": "CONFIG",
        # The reasons the page offers, in the configured spelling; with
        # pause_free_text the supervisor may also type one of their own.
        "pause_reasons": list(reasons.reasons),
        "pause_free_text": reasons.free_text,
        # The page's alert thresholds (--alert-*; null / {} when off).
        "alerts": (alerts or AlertThresholds()).to_json(),
    }
