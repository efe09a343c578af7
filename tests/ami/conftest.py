"""Fixtures for the AMI client tests: log capture and a Clock-driven rig."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.fake_asterisk import AsteriskManagerFactory, MemoryNet
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from callcenter.ami.client import AMIClient


class LogCapture:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def lines(self, level: LogLevel | None = None) -> list[str]:
        return [
            formatEvent(e) for e in self.events
            if level is None or e.get("log_level") == level
        ]

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines() if text in line]

    def clear(self) -> None:
        self.events.clear()


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    yield capture
    globalLogPublisher.removeObserver(capture)


class Rig:
    """An AMIClient on a MemoryReactorClock, a fake Asterisk and the net between."""

    def __init__(self, **options: object) -> None:
        self.reactor = MemoryReactorClock()
        self.server = AsteriskManagerFactory("admin", "s3cret")
        self.net = MemoryNet(self.reactor, self.server)
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", 5038)
        kw: dict = {"jitter": lambda: 0.0}
        kw.update(options)
        self.client = AMIClient(self.reactor, endpoint, "admin", "s3cret", **kw)
        self.hook_calls = 0
        self.disconnects = 0
        self.client.add_connect_hook(self._hook)
        self.client.add_disconnect_hook(self._unhook)

    def _hook(self) -> None:
        self.hook_calls += 1

    def _unhook(self) -> None:
        self.disconnects += 1

    def start(self):
        self.client.startService()
        return self.net.accept()

    def advance(self, seconds: float) -> None:
        self.reactor.advance(seconds)

    def next_delay(self) -> float:
        """Seconds until the next scheduled reconnection attempt."""
        return self.client.retry_delays[-1]


@pytest.fixture
def rig_factory():
    rigs: list[Rig] = []

    def make(**options: object) -> Rig:
        rig = Rig(**options)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        if rig.client.running:
            rig.client.stopService()
            for link in rig.net.links:
                link.pump()
