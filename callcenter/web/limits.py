"""Bounds that keep clients from taking the dashboard server (or the service) down.

- ``ConnectionLimiter``: at most ``max_connections`` HTTP/WebSocket
  connections at once, ``max_per_address`` from one address; one over either
  is closed at accept (``buildProtocol`` returns None: Twisted closes the
  socket before reading a byte).  The global cap is lowered to leave
  ``fd_reserve`` descriptors free under ``RLIMIT_NOFILE``, so Redis and the
  AMI can always reconnect and the report be reopened during an attack.
- ``LimitedChannel``: an HTTP channel with a deadline for the request line
  and headers (``request_timeout``; Twisted's own idle timeout restarts on
  every byte, so a client sending one byte every 20 s stayed forever) and a
  body limit (``max_body``) checked on Content-Length and on chunked bytes
  before anything is spooled: 408 and 413 answers, then the connection closes.
- Refusals are logged through one ``LogThrottle`` per site: a flood is a few
  lines and a count a minute.

This module decides and counts; it never reads what a client sends beyond
what Twisted already parsed.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.web import http

from callcenter.logthrottle import LOG_INTERVAL, LogThrottle

log = Logger(namespace="callcenter.web")

MAX_CONNECTIONS = 512  # --max-connections
MAX_PER_ADDRESS = 32  # --max-per-address
FD_RESERVE = 64  # --fd-reserve: descriptors never used by dashboard connections
HELLO_INTERVAL = 1.0  # --hello-interval: seconds between two HELLOs of one connection
STATS_INTERVAL = 0.5  # --stats-interval: seconds between two STATS pushes (fanout.py)
REQUEST_TIMEOUT = 10.0  # --request-timeout: request line + headers, seconds
MAX_BODY = 4096  # --max-body: bytes (the page sends none; a login form a few hundred)
CHUNK_FRAMING = 256  # bytes of chunked-encoding framing tolerated on top of --max-body


@dataclass
class WebLimits:
    max_connections: int = MAX_CONNECTIONS
    max_per_address: int = MAX_PER_ADDRESS
    fd_reserve: int = FD_RESERVE
    hello_interval: float = HELLO_INTERVAL
    stats_interval: float = STATS_INTERVAL
    request_timeout: float = REQUEST_TIMEOUT
    max_body: int = MAX_BODY
    log_interval: float = LOG_INTERVAL
    throttle: LogThrottle | None = field(default=None, repr=False)

    def log(self, reactor: Any) -> LogThrottle:
        if self.throttle is None:
            self.throttle = LogThrottle(log, reactor, self.log_interval)
        return self.throttle


def descriptor_budget(max_connections: int, reserve: int) -> int:
    """``max_connections``, lowered so that ``reserve`` descriptors stay free."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 32  # a guess for systems without /proc
    return max(1, min(max_connections, soft - in_use - reserve))


class ConnectionLimiter:
    """Counts open connections, in total and per address; refuses at accept."""

    def __init__(self, limits: WebLimits, reactor: Any) -> None:
        self.limits = limits
        self.throttle = limits.log(reactor)
        self.max_connections = descriptor_budget(limits.max_connections, limits.fd_reserve)
        if self.max_connections < limits.max_connections:
            log.info(
                "dashboard connections limited to {n} (not {asked}): RLIMIT_NOFILE minus "
                "the {reserve} descriptors kept for Redis, AMI and the report",
                n=self.max_connections,
                asked=limits.max_connections,
                reserve=limits.fd_reserve,
            )
        self.open = 0
        self.per_address: dict[str, int] = {}
        self.refused = 0  # for tests and the benchmark

    def admit(self, addr: Any) -> bool:
        host = getattr(addr, "host", str(addr))
        if self.open >= self.max_connections:
            self._refuse("web.max-connections", host, f"{self.open} open (--max-connections {self.max_connections})")
            return False
        if self.per_address.get(host, 0) >= self.limits.max_per_address:
            self._refuse("web.max-per-address", host,
                         f"{self.per_address[host]} open from it (--max-per-address {self.limits.max_per_address})")
            return False
        return True

    def _refuse(self, key: str, host: str, why: str) -> None:
        self.refused += 1
        self.throttle.warn(key, "connection from {host} closed at accept: {why}", host=host, why=why)

    def wrap(self, proto: Any, addr: Any) -> ProtocolWrapper:
        # A ProtocolWrapper: Autobahn's WebSocket takeover recognises it and
        # replaces the wrapped protocol, so the count follows the connection.
        wrapper = _Counted(self, proto)
        wrapper._limit_host = getattr(addr, "host", str(addr))
        return wrapper

    # The two calls ProtocolWrapper makes on its "factory":
    def registerProtocol(self, wrapper: ProtocolWrapper) -> None:
        host = getattr(wrapper, "_limit_host", "")
        self.open += 1
        self.per_address[host] = self.per_address.get(host, 0) + 1

    def unregisterProtocol(self, wrapper: ProtocolWrapper) -> None:
        host = getattr(wrapper, "_limit_host", "")
        self.open -= 1
        left = self.per_address.get(host, 1) - 1
        if left > 0:
            self.per_address[host] = left
        else:
            self.per_address.pop(host, None)

    def logPrefix(self) -> str:
        return "DashboardSite"


class _Counted(ProtocolWrapper):
    """A connection the limiter counts; ``connected`` follows the real transport."""

    _limit_host = ""

    def connectionLost(self, reason: Any) -> None:
        self.connected = False
        super().connectionLost(reason)


def real_transport(transport: Any) -> Any:
    """Under the counting wrapper: the transport Autobahn must see (TCP or TLS)."""
    return transport.transport if isinstance(transport, _Counted) else transport


class LimitedChannel(http.HTTPChannel):
    """HTTPChannel with a request-line/header deadline and a body limit."""

    limits: WebLimits = WebLimits()
    throttle: LogThrottle | None = None

    def __init__(self) -> None:
        super().__init__()
        self._deadline: Any = None
        self._body = 0
        self._refused = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._body = 0
        self._deadline = self.callLater(self.limits.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self._refuse(408, b"Request Timeout", "web.408",
                     f"no request line and headers within {self.limits.request_timeout:g} s")

    def allHeadersReceived(self) -> None:
        self._disarm()
        if self.length is not None and self.length > self.limits.max_body:
            self._refuse(413, b"Content Too Large", "web.413",
                         f"body of {self.length} bytes (--max-body {self.limits.max_body})")
            return
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        # Body bytes as they arrive (chunked bodies have no Content-Length to
        # check first): refused before Twisted spools them.
        self._body += len(data)
        if self._body > self.limits.max_body + CHUNK_FRAMING:
            self._refuse(413, b"Content Too Large", "web.413",
                         f"body over {self.limits.max_body} bytes (--max-body)")
            return
        super().rawDataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if not self._refused:
            super().lineReceived(line)

    def requestDone(self, request: Any) -> None:
        super().requestDone(request)
        if self.persistent and not self._refused and self.transport is not None:
            self._arm()  # the next request on a kept-alive connection has the same deadline

    def connectionLost(self, reason: Any) -> None:
        self._disarm()
        super().connectionLost(reason)

    def _refuse(self, code: int, phrase: bytes, key: str, why: str) -> None:
        if self._refused or self.transport is None:
            return
        self._refused = True
        if self.throttle is not None:
            peer = getattr(self.transport.getPeer(), "host", "?")
            self.throttle.warn(key, "HTTP client {peer} refused ({code}): {why}", peer=peer, code=code, why=why)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % (code, phrase)
        )
        self.loseConnection()


__all__ = [
    "FD_RESERVE",
    "HELLO_INTERVAL",
    "MAX_BODY",
    "MAX_CONNECTIONS",
    "MAX_PER_ADDRESS",
    "REQUEST_TIMEOUT",
    "ConnectionLimiter",
    "LimitedChannel",
    "WebLimits",
    "descriptor_budget",
    "real_transport",
]
