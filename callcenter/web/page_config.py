"""The CONFIG object: the settings a dashboard needs, sent in the HELLO reply
before STATS (brief: one builder; issue 13 adds ``alerts``, issue 15 the pause
reasons, issue 16 may add keys).  Old pages ignore an unknown object type."""

from __future__ import annotations

from typing import Any

from callcenter.alerts import AlertThresholds


def config_object(*, alerts: AlertThresholds | None = None, **extra: Any) -> dict[str, Any]:
    """``{"type": "CONFIG", "alerts": {...}, ...}``; ``extra`` are other tasks' keys."""
    return {"type": "CONFIG", **extra, "alerts": (alerts or AlertThresholds()).to_json()}
