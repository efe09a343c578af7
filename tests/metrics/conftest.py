from store.conftest import redis_server  # noqa: F401 - fixture
