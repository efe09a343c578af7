"""The HTTP side of logins: ``/login``, ``/logout`` and the resources only a
logged-in user gets (the page, ``/config.json``).

- ``GET /login``: the login page; ``POST /login`` with JSON ``{"user", "password"}``
  checks the password through the portal, throttled per user and address,
  and sets the session cookie;
- ``POST /logout`` ends the session in Redis and its open dashboards;
- ``/?token=…`` turns a wallboard token into a read-only session.

State-changing POSTs must carry our own Origin (login and logout CSRF).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.cred import credentials, error
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from callcenter.auth.checkers import LoginBusy, SessionId, WallboardToken
from callcenter.auth.sessions import SessionStoreDown
from callcenter.web.access import MAX_LOGIN_BODY, Access, Identity, header_text, session_cookie

log = Logger(namespace="callcenter.web")


def _render_async(request: server.Request, coro: Any) -> Any:
    # The client may go while we wait for Redis or argon2: nothing is written then.
    request.notifyFinish().addErrback(lambda _f: setattr(request, "callcenter_gone", True))
    d = defer.ensureDeferred(coro)

    def failed(failure: Any) -> None:
        if failure.check(SessionStoreDown, LoginBusy):
            request.setHeader(b"Retry-After", b"5")
            _finish(request, 503, {"error": "busy or session store unavailable, try again shortly"})
            return
        log.failure("access check failed", failure)
        _finish(request, 500, {"error": "internal error"})

    d.addErrback(failed)
    return server.NOT_DONE_YET


def _finish(request: server.Request, code: int, body: dict[str, Any] | None = None) -> None:
    if request.finished or getattr(request, "callcenter_gone", False):
        return
    request.setResponseCode(code)
    if body is not None:
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        request.write(json.dumps(body).encode())
    request.finish()


def _serve(request: server.Request, target: resource.Resource) -> None:
    if getattr(request, "callcenter_gone", False):
        return
    result = target.render(request)
    if result is not server.NOT_DONE_YET:
        if result:
            request.write(result)
        request.finish()


class Guarded(resource.Resource):
    """A resource only for logged-in users: the page redirects to ``login``,
    anything else answers 401.  ``/?token=…`` logs a wallboard in first."""

    isLeaf = True

    def __init__(self, access: Access, target: resource.Resource, page: bool = False,
                 login: bytes = b"login") -> None:
        super().__init__()
        self.access = access
        self.target = target
        self.page = page
        self.login = login  # where a page without a login is sent

    def render_GET(self, request: server.Request) -> Any:
        return _render_async(request, self._render(request))

    async def _render(self, request: server.Request) -> None:
        access = self.access
        token = request.args.get(b"token", [None])[0] if self.page and not access.open else None
        if token is not None:
            await self._token_login(request, token.decode("utf-8", "replace"))
            return
        identity = await access.identify_request(request)
        if identity is None:
            if self.page:
                request.setHeader(b"Location", self.login)
                _finish(request, 302)
            else:
                _finish(request, 401, {"error": "login required"})
            return
        request.identity = identity  # type: ignore[attr-defined]
        _serve(request, self.target)

    async def _token_login(self, request: server.Request, token: str) -> None:
        access = self.access
        address = request.getClientAddress().host
        # Failed tokens count per address (user names cannot hold ":"): one
        # guesser must not lock every wall board out.
        key = f"token:{address}"
        wait = access.throttle.retry_after(key, address) if access.throttle else 0
        if wait > 0:
            request.setHeader(b"Retry-After", str(int(wait) + 1).encode())
            _finish(request, 429, {"error": "too many failed logins; try again later"})
            return
        try:
            avatar = await access.login_avatar(WallboardToken(token))
        except error.UnauthorizedLogin:
            if access.throttle:
                access.throttle.failed(key, address)
            log.warn("wallboard token refused from {peer}", peer=address)
            _finish(request, 403, {"error": "unknown or revoked token"})
            return
        session = await access.sessions.create(avatar.name, "token", address)
        request.setHeader(b"Set-Cookie", access.cookie_header(request, session.id))
        log.info("wallboard {user} opened a session from {peer}", user=avatar.name, peer=address)
        request.identity = Identity(avatar, SessionId(session.id), session.id, address)  # type: ignore[attr-defined]
        _serve(request, self.target)


class Login(resource.Resource):
    """``GET /login``: the page; ``POST /login`` with JSON ``{"user", "password"}``."""

    isLeaf = True

    def __init__(self, access: Access, page: resource.Resource) -> None:
        super().__init__()
        self.access = access
        self.page = page

    def render_GET(self, request: server.Request) -> Any:
        if self.access.open:
            request.setHeader(b"Location", b"./")
            request.setResponseCode(302)
            return b""
        return self.page.render(request)

    def render_POST(self, request: server.Request) -> Any:
        return _render_async(request, self._post(request))

    async def _post(self, request: server.Request) -> None:
        access = self.access
        if access.open:
            _finish(request, 404, {"error": "this service runs without logins"})
            return
        if not access.same_origin_post(request):
            _finish(request, 403, {"error": "origin not allowed"})
            return
        body = request.content.read(MAX_LOGIN_BODY + 1)
        try:
            if len(body) > MAX_LOGIN_BODY:
                raise ValueError
            data = json.loads(body)
            name, password = data["user"], data["password"]
            if not isinstance(name, str) or not isinstance(password, str) or not name or not password:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            _finish(request, 400, {"error": "send JSON {\"user\": ..., \"password\": ...}"})
            return
        address = request.getClientAddress().host
        name = name.strip()[:64]
        wait = access.throttle.retry_after(name, address)
        if wait > 0:
            log.warn("login for {user!r} from {peer} refused: throttled", user=name, peer=address)
            request.setHeader(b"Retry-After", str(int(wait) + 1).encode())
            _finish(request, 429, {"error": "too many failed logins; try again later"})
            return
        try:
            avatar = await access.login_avatar(credentials.UsernamePassword(name.encode(), password.encode()))
        except error.UnauthorizedLogin:
            access.throttle.failed(name, address)
            log.warn("login failed for {user!r} from {peer}", user=name, peer=address)
            _finish(request, 401, {"error": "wrong user name or password"})
            return
        access.throttle.succeeded(name)
        try:
            session = await access.sessions.create(avatar.name, "password", address)
        except error.UnauthorizedLogin:  # removed between the check and now
            _finish(request, 401, {"error": "wrong user name or password"})
            return
        request.setHeader(b"Set-Cookie", access.cookie_header(request, session.id))
        log.info("{user} ({role}) logged in from {peer}", user=avatar.name, role=avatar.role, peer=address)
        _finish(request, 200, {"ok": True, "user": avatar.describe()})


class Logout(resource.Resource):
    isLeaf = True

    def __init__(self, access: Access) -> None:
        super().__init__()
        self.access = access

    def render_POST(self, request: server.Request) -> Any:
        return _render_async(request, self._post(request))

    async def _post(self, request: server.Request) -> None:
        access = self.access
        if not access.open and not access.same_origin_post(request):
            _finish(request, 403, {"error": "origin not allowed"})
            return
        sid = session_cookie(header_text(request.getHeader("cookie")))
        if sid and access.sessions is not None:
            await access.sessions.delete(sid)
            access.end_session(sid)
        request.setHeader(b"Set-Cookie", access.cookie_header(request, "", clear=True))
        _finish(request, 200, {"ok": True})

