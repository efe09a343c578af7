from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from .support import STATIC_DIR, start_rig

VENDOR = [
    os.path.join(STATIC_DIR, "node_modules", "vue", "dist", "vue.global.prod.js"),
    os.path.join(STATIC_DIR, "node_modules", "bootstrap", "dist", "css", "bootstrap.min.css"),
]


@pytest.fixture(autouse=True)
def _static_installed() -> None:
    missing = [p for p in VENDOR if not os.path.isfile(p)]
    if missing:
        pytest.fail(
            f"static/node_modules is missing ({missing[0]}): run `make test`, or `npm ci` in static/",
            pytrace=False,
        )


@pytest_twisted.async_yield_fixture()
async def rig():
    r = await start_rig()
    yield r
    await r.stop()


class FakeChanges:
    def __init__(self, objects: list[dict[str, Any]], stats: dict[str, Any] | None) -> None:
        self.objects = objects
        self.stats = stats
        self.has_stats = stats is not None


class FakeCenter:
    """The Callcenter's dashboard-facing interface, for fan-out tests that need
    volume or exact control over what one Changes holds."""

    def __init__(self) -> None:
        self.agents: dict[str, dict[str, Any]] = {}
        self.waiting = 0
        self.subscribers: list[Callable[[Any], None]] = []
        self.commands: list[tuple[str, ...]] = []

    def stats(self) -> dict[str, Any]:
        return {"type": "STATS", "day": "2026-11-26", "calls_waiting": self.waiting,
                "longest_wait": 0, "queues": {}}

    def snapshot(self) -> list[dict[str, Any]]:
        return [self.stats(), *self.agents.values()]

    def live_entities(self) -> tuple[list[Any], list[Any]]:
        """Its AGENT objects as the entities they render (queues, call_queue)."""
        agents = [
            SimpleNamespace(agentid=o["agentid"], status=o["status"], queues=o.get("queues") or [],
                            call_queue="" if o.get("queues") else o.get("queue", ""))
            for o in self.agents.values()
        ]
        return agents, []

    def subscribe(self, fn: Callable[[Any], None]) -> Callable[[], None]:
        self.subscribers.append(fn)
        return lambda: self.subscribers.remove(fn)

    def emit(self, objects: list[dict[str, Any]], stats: bool = False) -> None:
        for o in objects:
            if o["type"] == "AGENT":
                self.agents[o["agentid"]] = o
        ch = FakeChanges(objects, self.stats() if stats else None)
        for fn in list(self.subscribers):
            fn(ch)

    def pause(self, agentid: str, reason: str = "") -> defer.Deferred:
        self.commands.append(("pause", agentid, reason))
        return defer.succeed(None)

    def unpause(self, agentid: str) -> defer.Deferred:
        self.commands.append(("unpause", agentid))
        return defer.succeed(None)


@pytest.fixture
def fake_center() -> FakeCenter:
    return FakeCenter()
