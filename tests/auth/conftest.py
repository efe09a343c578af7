from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store.conftest import LogCapture, RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    from twisted.logger import globalLogPublisher

    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    try:
        yield capture
    finally:
        globalLogPublisher.removeObserver(capture)
