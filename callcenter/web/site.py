"""The dashboard web site: the page, its assets, ``/config.json`` and the WebSocket.

Everything on one port, so ``--listen ssl:...`` gives HTTPS and WSS together.
Only files that the page needs are reachable: the top-level files of the
static directory (never ``node_modules`` or the npm manifests) and the two
third-party files, Vue's global build and Bootstrap's CSS, under ``/vendor/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.web import http, resource, server, static

from callcenter.web.limits import ConnectionLimiter, LimitedChannel, WebLimits
from callcenter.web.origin import OriginPolicy
from callcenter.web.protocol import DashboardFactory

MiB = 1 << 20

# Served from the static directory's top level; anything else there stays private.
PAGE_EXTENSIONS = frozenset({".html", ".js", ".css", ".svg", ".png", ".ico", ".woff2"})
PRIVATE_FILES = frozenset({"package.json", "package-lock.json"})

# URL name under /vendor/ → path inside static/node_modules (installed by `npm ci`).
VENDOR_FILES = {
    "vue.global.prod.js": ("vue", "dist", "vue.global.prod.js"),
    "bootstrap.min.css": ("bootstrap", "dist", "css", "bootstrap.min.css"),
}

# Only this origin; Bootstrap's CSS embeds its icons as data: SVG images.
# Vue's render functions need no eval, so no 'unsafe-eval'.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    b"Content-Security-Policy": CSP.encode(),
    b"X-Content-Type-Options": b"nosniff",
    b"X-Frame-Options": b"DENY",
    b"Referrer-Policy": b"no-referrer",
    b"Cross-Origin-Opener-Policy": b"same-origin",
    b"Cross-Origin-Resource-Policy": b"same-origin",
    # The page changes with each deploy; revalidate (cheap: Last-Modified).
    b"Cache-Control": b"no-cache",
}


class MissingAssets(FileNotFoundError):
    """The page or its npm packages are not installed in the static directory."""


class _Request(server.Request):
    def process(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.setHeader(name, value)
        super().process()


class DashboardSite(server.Site):
    """A Site that follows the call center only while it listens somewhere."""

    requestFactory = _Request
    dashboards: Any  # callcenter.web.fanout.Dashboards
    limiter: ConnectionLimiter | None = None
    channel: type[LimitedChannel] = LimitedChannel

    def protocol(self) -> Any:  # HTTPFactory calls it as a method, as Twisted's own factory
        return http._GenericHTTPChannelProtocol(self.channel())

    def buildProtocol(self, addr: Any) -> Any:
        # Over a limit: None, and Twisted closes the socket before any work.
        if self.limiter is not None and not self.limiter.admit(addr):
            return None
        proto = super().buildProtocol(addr)
        if self.limiter is not None and proto is not None:
            return self.limiter.wrap(proto, addr)
        return proto

    def startFactory(self) -> None:
        super().startFactory()
        self.dashboards.start()

    def stopFactory(self) -> None:
        # Last port closed (service stopping): dashboards are told to go away
        # and reconnect, which they do with backoff.
        self.dashboards.stop()
        super().stopFactory()


class _Config(resource.Resource):
    isLeaf = True

    def __init__(self, config: dict[str, Any], reactor: Any) -> None:
        super().__init__()
        self._config = config
        self._reactor = reactor

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        # "now" lets the page correct its clock for the live-ticking timers.
        return json.dumps(self._config | {"now": self._reactor.seconds()}).encode()


def _file(path: str) -> static.File:
    f = static.File(path, defaultType="application/octet-stream")
    f.contentTypes = f.contentTypes | {".js": "text/javascript", ".css": "text/css"}
    return f


def make_site(
    center: Any,
    *,
    static_dir: str,
    allowed_origins: Iterable[str] = (),
    reactor: Any = None,
    max_buffer: int = 1 * MiB,
    max_frame: int = 4096,
    sla: int = 10,
    sla_target: float = 80.0,
    limits: WebLimits | None = None,
) -> server.Site:
    """The dashboard site for ``center``; listen on it with any server endpoint.

    ``site.dashboards`` (``callcenter.web.fanout.Dashboards``) subscribes to
    the center when the site starts listening and, when the last port stops,
    unsubscribes and closes every dashboard (they reconnect by themselves).
    Raises ``MissingAssets`` if the page or its npm packages are missing,
    ``ValueError`` for a malformed allowed origin.  ``limits`` bounds
    connections, request deadlines and bodies, and HELLOs (``limits.py``).
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    origins = OriginPolicy(allowed_origins)
    limits = limits or WebLimits()
    throttle = limits.log(reactor)
    static_dir = os.path.abspath(static_dir)

    root = resource.Resource()
    index = os.path.join(static_dir, "index.html")
    if not os.path.isfile(index):
        raise MissingAssets(f"dashboard page missing: {index}")
    root.putChild(b"", _file(index))
    for name in sorted(os.listdir(static_dir)):
        path = os.path.join(static_dir, name)
        ext = os.path.splitext(name)[1]
        if (
            os.path.isfile(path)
            and ext in PAGE_EXTENSIONS
            and not name.startswith(".")
            and name not in PRIVATE_FILES
        ):
            root.putChild(name.encode(), _file(path))

    vendor = resource.Resource()
    for name, parts in VENDOR_FILES.items():
        path = os.path.join(static_dir, "node_modules", *parts)
        if not os.path.isfile(path):
            raise MissingAssets(
                f"dashboard library missing: {path} (run `npm ci` in {static_dir})"
            )
        vendor.putChild(name.encode(), _file(path))
    root.putChild(b"vendor", vendor)

    root.putChild(b"config.json", _Config({"sla": sla, "sla_target": sla_target}, reactor))

    factory = DashboardFactory(
        center,
        reactor=reactor,
        origins=origins,
        max_buffer=max_buffer,
        max_frame=max_frame,
        limits=limits,
    )
    root.putChild(b"callcenter", WebSocketResource(factory))

    # Idle keep-alive HTTP connections go after a minute; WebSockets are not
    # subject to it (Twisted stops the timer while a request is in progress).
    site = DashboardSite(root, reactor=reactor, timeout=60)
    site.dashboards = factory.dashboards
    site.limiter = ConnectionLimiter(limits, reactor)
    # One channel class per site, carrying its limits and its log throttle.
    site.channel = type("_Channel", (LimitedChannel,), {"limits": limits, "throttle": throttle})
    return site
