"""Host and Origin policy: the service knows its public origin(s).

DNS rebinding: a page on ``evil.example`` whose name is re-pointed at the
service's address makes the victim's browser send ``Host: evil.example`` to
us, with ``Origin: http://evil.example``.  Comparing Origin with Host (what
we did before) accepts that.  So every HTTP request and WebSocket upgrade
must carry a ``Host`` that is one of the service's public origins, and the
upgrade must carry an ``Origin`` that is *exactly* one of them (scheme, host
and port); no Origin is refused (browsers always send one, and a non-browser
client can send the right one).

Without ``--public-url`` the service is on loopback (the service refuses to
start otherwise) and its origins are ``http(s)://<loopback name>:<port>``:
the Host must name a loopback address or ``localhost`` and the Origin must
be the Host with the scheme the connection really uses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

# A browser's Origin is the page's: http or https, never ws/wss.
_DEFAULT_PORTS = {"http": 80, "https": 443}

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


def parse_public_url(value: str) -> Origin:
    """``--public-url``: ``http(s)://host[:port][/]`` → its origin; ValueError if not one."""
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"--public-url {value!r}: must start with http:// or https://")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"--public-url {value!r}: no path, query or fragment (serve at /)")
    return parse_origin(f"{parts.scheme}://{parts.netloc}")


def _parse_host(host: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit("//" + host.strip())
    if not parts.hostname or parts.path or parts.username:
        raise ValueError(f"bad Host {host!r}")
    return parts.hostname.lower(), parts.port or default_port


def is_loopback_name(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class OriginPolicy:
    def __init__(self, public_urls: Iterable[str] = (), allowed: Iterable[str] = ()) -> None:
        self.public = tuple(parse_public_url(u) for u in public_urls)
        # Extra exact origins allowed on the upgrade (another page of ours); their Host is still checked.
        self.allowed = frozenset(parse_origin(o) for o in allowed)
        self._hosts = {(h, p) for _s, h, p in self.public}

    @property
    def loopback(self) -> bool:
        return not self.public

    @property
    def secure_public(self) -> bool:
        """The users reach us over https (maybe through a TLS-terminating proxy)."""
        return any(s == "https" for s, _h, _p in self.public)

    def _host(self, host: str | None, secure: bool) -> tuple[str, int] | None:
        if not host:
            return None
        try:
            name, port = _parse_host(host, 443 if secure else 80)
        except ValueError:
            return None
        if self.loopback:
            return (name, port) if is_loopback_name(name) else None
        if (name, port) in self._hosts:
            return name, port
        if port == (443 if secure else 80):
            # Behind a proxy the Host may lack the public port's number; the name must match.
            for _s, h, p in self.public:
                if h == name and p == _DEFAULT_PORTS[_s]:
                    return h, p
        return None

    def host_allowed(self, host: str | None, secure: bool) -> bool:
        return self._host(host, secure) is not None

    def origin_allowed(self, origin: str | None, host: str | None, secure: bool) -> bool:
        if not origin:
            return False
        hostport = self._host(host, secure)
        if hostport is None:
            return False
        try:
            o = parse_origin(origin)
        except ValueError:
            return False  # includes "null" (sandboxed frames, file://)
        if o in self.allowed:
            return True
        if self.loopback:
            return o == ("https" if secure else "http", *hostport)
        return o in self.public and (o[1], o[2]) == hostport
