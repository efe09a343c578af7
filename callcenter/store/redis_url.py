"""``--redis`` URLs: ``redis://[[user]:password@]host[:port][/db]`` and ``rediss://`` (TLS).

``rediss://`` verifies the server's certificate against the system's trust
store and its host name; ``?ssl_ca_certs=/path/ca.pem`` trusts a private CA
instead, and ``ssl_certfile``/``ssl_keyfile`` give a client certificate (Redis
asks for one unless ``tls-auth-clients`` is ``no``/``optional``).  The
parameter names are redis-py's.  The password never appears in ``str()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT = 6379
_QUERY_KEYS = frozenset({"ssl_ca_certs", "ssl_certfile", "ssl_keyfile"})


@dataclass(frozen=True)
class RedisURL:
    host: str
    port: int = DEFAULT_PORT
    db: int = 0
    password: str | None = None
    username: str | None = None
    tls: bool = False
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    def __str__(self) -> str:
        """The URL for log lines, password masked."""
        auth = ""
        if self.password is not None:
            auth = f"{self.username or ''}:***@"
        elif self.username:
            auth = f"{self.username}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{auth}{host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisURL:
    """Parse a ``--redis`` value; ValueError with one clear line when it is wrong."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"--redis {_masked(url)!r}: bad host or port") from None
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(
            f"--redis must look like redis://[:password@]host:port/db, not {_masked(url)!r}"
        )
    if not parts.hostname:
        raise ValueError(f"--redis {_masked(url)!r}: no host")
    db_text = parts.path.strip("/")
    try:
        db = int(db_text) if db_text else 0
    except ValueError:
        raise ValueError(f"--redis {_masked(url)!r}: database must be a number") from None
    if db < 0:
        raise ValueError(f"--redis {_masked(url)!r}: database must be 0 or more")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - _QUERY_KEYS
    if unknown:
        raise ValueError(f"--redis: unknown URL parameter(s) {', '.join(sorted(unknown))}")
    tls_files = {k: query[k][-1] or None for k in _QUERY_KEYS if k in query}
    if any(tls_files.values()) and parts.scheme != "rediss":
        raise ValueError("--redis: ssl_* parameters need a rediss:// URL")
    if bool(tls_files.get("ssl_certfile")) != bool(tls_files.get("ssl_keyfile")):
        raise ValueError("--redis: give both ssl_certfile and ssl_keyfile, or neither")
    password = unquote(parts.password) if parts.password is not None else None
    username = unquote(parts.username) if parts.username else None
    if password == "":
        password = None
    return RedisURL(
        host=parts.hostname,
        port=port or DEFAULT_PORT,
        db=db,
        password=password,
        username=username,
        tls=parts.scheme == "rediss",
        ca_certs=tls_files.get("ssl_ca_certs"),
        certfile=tls_files.get("ssl_certfile"),
        keyfile=tls_files.get("ssl_keyfile"),
    )


def _masked(url: str) -> str:
    """The URL with any password replaced, for error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    auth, _, tail = rest.partition("@")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"
