"""The dashboard web site: the page, its assets, ``/config.json`` and the WebSocket.

Everything on one port, so ``--listen ssl:...`` gives HTTPS and WSS together.
Every request must name one of our public hosts (``origin.OriginPolicy``,
else 421); the page, ``/config.json`` and the WebSocket need a login
(``access.Access``), the login page and the page's own code do not.
Only files that the page needs are reachable: the top-level files of the
static directory (never ``node_modules`` or the npm manifests) and the two
third-party files, Vue's global build and Bootstrap's CSS, under ``/vendor/``
(where they are: ``callcenter.web.assets``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.web import resource, server, static

from callcenter.auth.checkers import make_portal
from callcenter.web.access import Access
from callcenter.web.assets import MissingAssets, PageAssets, find_assets
from callcenter.web.limits import ConnectionLimiter, LimitedChannel, WebLimits
from callcenter.web.origin import OriginPolicy
from callcenter.web.page_config import config_object
from callcenter.web.pages import Guarded, Login, Logout
from callcenter.web.probes import PROBE_PATHS, Healthz, Readyz
from callcenter.web.protocol import DashboardFactory
from callcenter.web.screen_pop import ScreenPop

MiB = 1 << 20

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


__all__ = ["MissingAssets", "make_site"]

# What `/` answers when the page's files are missing (a broken install).
UNAVAILABLE_PAGE = (
    "<!doctype html><title>Dashboard unavailable</title><p>The dashboard's page files are "
    "not installed here, so there is no page to show. The call-center service itself is "
    "running: it follows the PBX, keeps its state and KPIs in Redis, writes the report file "
    "and answers on the WebSocket <code>/callcenter</code>. Install a callcenter wheel built "
    "with npm (<code>pip install callcenter-*.whl</code>), or run <code>npm ci</code> in "
    "<code>static/</code> of a checkout, then restart the service; its log names the missing "
    "file.</p>\n"
)


class _Request(server.Request):
    def process(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.setHeader(name, value)
        # Probes name the service by address; they reveal only up/down (probes.py).
        if self.path not in PROBE_PATHS and not self._our_host():
            return
        super().process()

    def _our_host(self) -> bool:
        """DNS rebinding: a Host that is not one of our public names gets 421."""
        host = self.getHeader(b"host")
        origins = getattr(self.channel.site, "origins", None)
        if origins is None or origins.host_allowed(host.decode("latin-1") if host else None, self.isSecure()):
            return True
        self.setResponseCode(421)
        self.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        self.write(b"421 Misdirected Request: this service does not answer for that host name\n")
        self.finish()
        return False


class DashboardSite(server.Site):
    """A Site that follows the call center only while it listens somewhere."""

    requestFactory = _Request
    dashboards: Any  # callcenter.web.fanout.Dashboards
    access: Access
    origins: OriginPolicy
    limiter: ConnectionLimiter | None = None
    channel: type[LimitedChannel] = LimitedChannel

    def protocol(self) -> Any:
        # HTTPFactory builds each connection with self.protocol(): our HTTP/1.1
        # channel with its deadlines and body limit (no HTTP/2 negotiation,
        # which the dashboard does not use; Twisted's wrapper for it is private).
        return self.channel()

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
        self.access.start()

    def stopFactory(self) -> None:
        # Last port closed (service stopping): dashboards are told to go away
        # and reconnect, which they do with backoff.
        self.access.stop()
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
        # "now" lets the page correct its clock for the live-ticking timers;
        # "user" lets it show only what the role may do.
        identity = getattr(request, "identity", None)
        user = identity.user.describe() if identity is not None else None
        return json.dumps(self._config | {"now": self._reactor.seconds(), "user": user}).encode()


def _file(path: str) -> static.File:
    f = static.File(path, defaultType="application/octet-stream")
    f.contentTypes = f.contentTypes | {".js": "text/javascript", ".css": "text/css"}
    return f


class _Unavailable(resource.Resource):
    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        request.setResponseCode(503)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Retry-After", b"3600")
        return UNAVAILABLE_PAGE.encode()


def _page(root: resource.Resource, assets: PageAssets) -> None:
    root.putChild(b"", _file(assets.index))
    for name, path in assets.page.items():
        root.putChild(name.encode(), _file(path))
    vendor = resource.Resource()
    for name, path in assets.vendor.items():
        vendor.putChild(name.encode(), _file(path))
    root.putChild(b"vendor", vendor)


AGENT_PAGE = "agent.html"


class _AgentPage(Guarded):
    """``/agent`` only: below it the page's relative links would break, so
    ``/agent/`` goes back to ``/agent`` and anything deeper is not found."""

    def render_GET(self, request: server.Request) -> Any:
        if request.postpath == [b""]:
            query = request.uri.partition(b"?")[2]
            request.setHeader(b"Location", b"../agent" + (b"?" + query if query else b""))
            request.setResponseCode(302)
            return b""
        if request.postpath:
            request.setResponseCode(404)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"not found\n"
        return super().render_GET(request)


def _agent_page(root: resource.Resource, access: Access, assets: PageAssets) -> None:
    """``/agent``: the agent's own page, behind the same login as the dashboard
    (a login from there comes back to it: ``login?then=agent``)."""
    path = assets.page.get(AGENT_PAGE)
    if path is not None:
        root.putChild(b"agent", _AgentPage(access, _file(path), page=True, login=b"login?then=agent"))


def make_site(
    center: Any,
    *,
    static_dir: str | None = None,
    on_missing_assets: Callable[[MissingAssets], None] | None = None,
    allowed_origins: Iterable[str] = (),
    public_urls: Iterable[str] = (),
    access: Access | None = None,
    reactor: Any = None,
    max_buffer: int = 1 * MiB,
    max_frame: int = 4096,
    sla: int = 10,
    sla_target: float = 80.0,
    limits: WebLimits | None = None,
    screen_pop: ScreenPop | None = None,
    config: dict[str, Any] | None = None,
    health: Any = None,
) -> server.Site:
    """The dashboard site for ``center``; listen on it with any server endpoint.

    ``site.dashboards`` (``callcenter.web.fanout.Dashboards``) subscribes to
    the center when the site starts listening and, when the last port stops,
    unsubscribes and closes every dashboard (they reconnect by themselves).
    ``static_dir`` defaults to the installed page (``callcenter.web.assets``).
    If the page or its npm packages are missing, raises ``MissingAssets``;
    unless ``on_missing_assets`` is given: then it is called once with the
    error and the site serves everything but the page (``/`` answers 503).
    Without ``access`` the site runs open (every visitor is an admin): only
    for loopback, where ``origins`` is then the loopback policy too.
    Raises ``ValueError`` for a malformed allowed origin or public URL.
    ``limits`` bounds connections, request deadlines and bodies, and HELLOs
    (``limits.py``).  ``config``: the CONFIG object every HELLO reply starts
    with (default: ``page_config.config_object`` of the center's pause reasons).
    ``screen_pop`` (``--screen-pop-url``): each CONNECT in progress carries its
    filled address for the agent page (``/agent``, ``static/agent.html``).
    ``health`` (``callcenter.health.Health``): its HEALTH goes to the dashboards
    and ``/readyz`` answers from it (without it, only ``/healthz`` is served).
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    if access is None:
        origins = OriginPolicy(public_urls, allowed_origins)
        access = Access(make_portal(None, reactor), clock=reactor, origins=origins, open_access=True)
    origins = access.origins
    limits = limits or WebLimits()
    throttle = limits.log(reactor)
    access.log_throttle = throttle

    root = resource.Resource()
    try:
        assets = find_assets(static_dir)
        login = os.path.join(assets.directory, "login.html")
        if not os.path.isfile(login):
            raise MissingAssets(f"login page missing: {login}")
    except MissingAssets as e:
        if on_missing_assets is None:
            raise
        on_missing_assets(e)
        root.putChild(b"", _Unavailable())
    else:
        _page(root, assets)
        root.putChild(b"", Guarded(access, _file(assets.index), page=True))
        root.putChild(b"login", Login(access, _file(login)))
        _agent_page(root, access, assets)
    root.putChild(b"logout", Logout(access))
    root.putChild(b"healthz", Healthz())  # unauthenticated: up/down only (probes.py)
    if health is not None:
        root.putChild(b"readyz", Readyz(health))

    page_config: dict[str, Any] = {"sla": sla, "sla_target": sla_target}
    # The agent page: whether a screen pop is configured and opens by itself.
    page_config["screen_pop"] = {"configured": screen_pop is not None,
                                 "auto": bool(screen_pop and screen_pop.auto)}
    root.putChild(b"config.json", Guarded(access, _Config(page_config, reactor)))

    factory = DashboardFactory(
        center,
        reactor=reactor,
        access=access,
        max_buffer=max_buffer,
        max_frame=max_frame,
        limits=limits,
        decorate=screen_pop.decorate if screen_pop is not None else None,
        config=config if config is not None else config_object(getattr(center, "pause_reasons", None)),
        health=health,
    )
    root.putChild(b"callcenter", WebSocketResource(factory))

    # Idle keep-alive HTTP connections go after a minute; WebSockets are not
    # subject to it (Twisted stops the timer while a request is in progress).
    site = DashboardSite(root, reactor=reactor, timeout=60)
    site.dashboards = factory.dashboards
    site.access = access
    site.origins = origins
    site.limiter = ConnectionLimiter(limits, reactor)
    # One channel class per site, carrying its limits and its log throttle.
    site.channel = type("_Channel", (LimitedChannel,), {"limits": limits, "throttle": throttle})
    return site
