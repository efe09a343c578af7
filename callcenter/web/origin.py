"""WebSocket Origin policy: same origin as the Host header, plus a configured list.

Browsers always send ``Origin`` on a WebSocket handshake, so checking it stops
another web site from driving a supervisor's browser into pausing agents
(cross-site WebSocket hijacking).  Clients that send no Origin are not
browsers and are let through, as RFC 6455 expects.  Autobahn's own check
compares against the listening port, which is unknown behind ``tcp:0`` or a
reverse proxy, so the Host header the client used is the reference here.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Origin = tuple[str, str, int]  # (scheme, host, port)


def parse_origin(value: str) -> Origin:
    """``scheme://host[:port]`` → normalised tuple; ValueError if it is not one."""
    parts = urlsplit(value.strip().rstrip("/"))
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"origin {value!r} is not scheme://host[:port]")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"origin {value!r} must not have a path, query or user")
    port = parts.port  # raises ValueError on a bad port
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _parse_host(host: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit("//" + host.strip())
    if not parts.hostname:
        raise ValueError(f"bad Host {host!r}")
    return parts.hostname.lower(), parts.port or default_port


class OriginPolicy:
    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = frozenset(parse_origin(o) for o in allowed)

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True  # not a browser
        try:
            o = parse_origin(origin)
        except ValueError:
            return False  # includes "null" (sandboxed frames, file://)
        if o in self.allowed:
            return True
        if not host:
            return False
        try:
            # A Host without port means the default port of the scheme the
            # browser used, which for a same-origin page is the origin's.
            return _parse_host(host, _DEFAULT_PORTS[o[0]]) == (o[1], o[2])
        except ValueError:
            return False
