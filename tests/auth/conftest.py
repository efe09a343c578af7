"""tests/store's throw-away redis-server and log capture, for the access tests."""

from store.conftest import logs, redis_server  # noqa: F401 - fixtures
