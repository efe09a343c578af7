"""Access to the dashboard: who is asking, asked of the ``twisted.cred`` portal.

(The login, logout and guarded HTTP resources are in ``callcenter.web.pages``.)

``Access`` is the one place the web layer learns identities.  A request is
turned into credentials — a trusted proxy's user header (only from the
listed proxy addresses), else the session cookie, else, when the service runs
open, ``Anonymous`` — and the portal answers with a role avatar
(``callcenter.auth.roles``) or refuses.  It also

- gives ``pages`` what the login, logout and ``/?token=…`` resources need;
- keeps the open dashboards by the credentials they connected with and asks
  the portal again every ``recheck`` seconds and whenever the users file is
  reloaded: a dashboard whose session expired, was logged out, or whose user
  was removed or changed is closed (code 4401; the page then reloads, which
  leads to the login page);
- checks each command against the avatar and writes the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any

from twisted.cred import credentials, error
from twisted.internet import defer
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web import server

from callcenter.auth.audit import AuditLog
from callcenter.auth.checkers import ANONYMOUS_NAME, ProxyUser, SessionId
from callcenter.auth.roles import IDashboardUser
from callcenter.auth.sessions import SessionStoreDown
from callcenter.logthrottle import LogThrottle
from callcenter.web.origin import OriginPolicy

log = Logger(namespace="callcenter.web")

COOKIE = "callcenter_session"
RECHECK = 60.0  # seconds between re-validations of the open dashboards' sessions
MAX_LOGIN_BODY = 4096  # bytes of a login POST
CLOSE_SESSION_ENDED = 4401  # WebSocket close code: log in again
NOT_ALLOWED = "not allowed"


class Identity:
    """Who a connection is: the avatar, and the credentials to ask again with."""

    def __init__(self, user: Any, creds: Any, session_id: str | None, address: str) -> None:
        self.user = user
        self.creds = creds
        self.session_id = session_id
        self.address = address


def session_cookie(header: str | None) -> str | None:
    if not header:
        return None
    try:
        jar = SimpleCookie(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


class Access:
    def __init__(
        self,
        portal: Any,
        *,
        clock: Any,
        origins: OriginPolicy,
        open_access: bool,
        sessions: Any = None,
        throttle: Any = None,
        audit: AuditLog | None = None,
        proxy_header: str | None = None,
        trusted: Callable[[str], bool] | None = None,
        recheck: float = RECHECK,
        login_page: Any = None,
    ) -> None:
        self.portal = portal
        self.clock = clock
        self.origins = origins
        self.open = open_access
        self.sessions = sessions
        self.throttle = throttle
        self.audit = audit or AuditLog(None, clock)
        self.proxy_header = proxy_header.lower() if proxy_header else None
        self.trusted = trusted or (lambda _peer: False)
        self.recheck = recheck
        self.login_page = login_page
        self.connections: dict[Any, Identity] = {}
        # Refusals an attacker can repeat at line rate: counted, not each logged.
        # make_site hands over the site's own throttle, so one count covers both.
        self.log_throttle = LogThrottle(log, clock)
        self._loop: LoopingCall | None = None
        self._rechecking = False

    # -- who is asking ------------------------------------------------------

    def _credentials(self, headers: Callable[[str], str | None], peer: str) -> tuple[Any, str | None]:
        if self.open:
            return credentials.Anonymous(), None
        if self.proxy_header is not None:
            asserted = headers(self.proxy_header)
            if asserted:
                if self.trusted(peer):
                    return ProxyUser(asserted.strip(), peer), None
                self.log_throttle.warn("web.proxy", "ignoring {header} from {peer}: not a trusted proxy",
                         header=self.proxy_header, peer=peer)
        sid = session_cookie(headers("cookie"))
        if sid:
            return SessionId(sid), sid
        return None, None

    async def login_avatar(self, creds: Any) -> Any:
        _iface, avatar, _logout = await self.portal.login(creds, None, IDashboardUser)
        return avatar

    async def identify(self, headers: Callable[[str], str | None], peer: str) -> Identity | None:
        """The Identity of a request, or None (not logged in). SessionStoreDown propagates."""
        creds, sid = self._credentials(headers, peer)
        if creds is None:
            return None
        try:
            avatar = await self.login_avatar(creds)
        except error.UnauthorizedLogin:
            return None
        return Identity(avatar, creds, sid, peer)

    async def identify_request(self, request: server.Request) -> Identity | None:
        return await self.identify(
            lambda name: header_text(request.getHeader(name)), request.getClientAddress().host
        )

    # -- the WebSocket ----------------------------------------------------------

    async def admit(self, conn: Any, request: Any) -> Identity:
        """Host, exact Origin and a valid login, or ConnectionDeny."""
        from autobahn.websocket.types import ConnectionDeny

        headers = request.headers
        secure = ISSLTransport.providedBy(conn.transport)
        peer = getattr(conn.transport.getPeer(), "host", "")
        host, origin = headers.get("host"), headers.get("origin")
        if not self.origins.host_allowed(host, secure):
            self.log_throttle.warn(
                "web.host", "dashboard {peer} refused: Host {host!r} is not ours", peer=peer, host=host)
            raise ConnectionDeny(421, "misdirected request")
        if not self.origins.origin_allowed(origin, host, secure):
            self.log_throttle.warn(
                "web.origin", "dashboard {peer} refused: origin {origin!r} not allowed",
                peer=peer, origin=origin)
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, "origin not allowed")
        try:
            identity = await self.identify(headers.get, peer)
        except SessionStoreDown:
            raise ConnectionDeny(ConnectionDeny.SERVICE_UNAVAILABLE, "session store unavailable") from None
        if identity is None:
            raise ConnectionDeny(401, "login required")
        if getattr(conn, "gone", False):  # closed while the portal answered
            raise ConnectionDeny(ConnectionDeny.BAD_REQUEST, "connection closed")
        self.connections[conn] = identity
        return identity

    def forget(self, conn: Any) -> None:
        self.connections.pop(conn, None)

    def start(self) -> None:
        if self._loop is None and not self.open and self.recheck > 0:
            self._loop = LoopingCall(self.recheck_all)
            self._loop.clock = self.clock
            self._loop.start(self.recheck, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def recheck_all(self) -> defer.Deferred:
        """Ask the portal again for every open dashboard; close those it refuses
        or whose view changed (their new view needs a new HELLO)."""
        if self._rechecking or self.open:
            return defer.succeed(None)
        self._rechecking = True

        async def run() -> None:
            by_creds: dict[Any, list[Any]] = {}
            for conn, ident in list(self.connections.items()):
                key = ident.session_id or (type(ident.creds).__name__, getattr(ident.creds, "username", ""))
                by_creds.setdefault(key, []).append(conn)
            for conns in by_creds.values():
                ident = self.connections.get(conns[0])
                if ident is None:
                    continue
                try:
                    avatar = await self.login_avatar(ident.creds)
                except error.UnauthorizedLogin:
                    avatar = None
                except SessionStoreDown:
                    return  # cannot tell now: keep them, try at the next round
                for conn in conns:
                    if avatar is None or avatar.view_key != ident.user.view_key:
                        self._end(conn, "session ended")
                    elif conn in self.connections:
                        self.connections[conn].user = avatar  # e.g. a new role description

        d = defer.ensureDeferred(run())

        def done(result: Any) -> Any:
            self._rechecking = False
            return result

        d.addBoth(done)
        d.addErrback(lambda f: log.failure("re-checking dashboard sessions failed", f))
        return d

    def _end(self, conn: Any, why: str) -> None:
        ident = self.connections.pop(conn, None)
        log.info("dashboard of {user} from {peer} closed: {why}",
                 user=ident.user.name if ident else "?", peer=ident.address if ident else "?", why=why)
        conn.session_ended()

    def end_session(self, session_id: str) -> None:
        for conn, ident in list(self.connections.items()):
            if ident.session_id == session_id:
                self._end(conn, "logged out")

    # -- commands ---------------------------------------------------------------

    def command(self, conn: Any, action: str, agentid: str, reason: str,
                agent_queues: frozenset[str], run: Callable[[], defer.Deferred]) -> defer.Deferred | None:
        """Run an allowed command and audit it; None (after auditing) if not allowed."""
        ident = self.connections.get(conn)
        user = ident.user if ident is not None else getattr(conn, "user", None)
        name = user.name if user is not None else ANONYMOUS_NAME
        address = ident.address if ident is not None else getattr(conn.transport.getPeer(), "host", "")

        def audit(answer: str) -> None:
            self.audit.record(user=name, address=address, action=action, agent=agentid,
                              reason=reason, answer=answer)

        if user is None or not user.may_command(agentid, agent_queues):
            audit(f"denied: {NOT_ALLOWED}")
            return None
        d = run()

        def ok(result: Any) -> Any:
            audit("Success")
            return result

        def failed(failure: Any) -> Any:
            audit(f"Error: {failure.getErrorMessage() or type(failure.value).__name__}")
            return failure

        return d.addCallbacks(ok, failed)

    # -- HTTP ----------------------------------------------------------------------

    def cookie_header(self, request: server.Request, value: str, clear: bool = False) -> bytes:
        parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
        if request.isSecure() or self.origins.secure_public:
            parts.append("Secure")
        if clear:
            parts.append("Max-Age=0")
        return "; ".join(parts).encode()

    def same_origin_post(self, request: server.Request) -> bool:
        """A state-changing POST must come from our own page (login CSRF, logout CSRF)."""
        origin = header_text(request.getHeader("origin"))
        return self.origins.origin_allowed(origin, header_text(request.getHeader("host")), request.isSecure())


def header_text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value
