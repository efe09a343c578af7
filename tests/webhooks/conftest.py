"""Fixtures of the webhook tests: a throw-away redis-server, log capture."""

from __future__ import annotations

from store.conftest import LogCapture, RedisServer, logs, redis_server  # noqa: F401
