"""A real throw-away redis-server per test (tests/store's fixtures)."""

from store.conftest import logs, redis_server  # noqa: F401  (tests/ is on sys.path)
