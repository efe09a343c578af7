"""Login sessions in Redis, under the service's key prefix.

A session is a random id (the cookie) whose SHA-256 names the Redis key
``<prefix>session:<hash>`` (a Redis dump holds no usable cookie).  It ends
after ``idle`` seconds without use (the key's TTL, renewed on use and while a
dashboard of the session is open) and ``absolute`` seconds after login
whatever happens, on logout, and when its user is removed or changes password
or token (the session remembers a fingerprint of the credential it was
opened with).  Sessions in Redis survive a restart of the service and can be
shared by several instances.

The connection is the store's (``callcenter.store.connection``: same URL
parsing, TLS and AUTH); it is opened on first use and again after a failure.
While Redis is unreachable no session can be opened or checked: logins get
"session store unavailable" and dashboards stay connected until it is back.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from twisted.cred import checkers, error
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from callcenter.auth.checkers import ISessionId
from callcenter.auth.source import UsersSource
from callcenter.store import connection as conn_mod
from callcenter.store.redis_url import parse_redis_url

log = Logger(namespace="callcenter.auth")

IDLE = 1800.0  # seconds: a session unused this long ends
ABSOLUTE = 43200.0  # seconds: a session ends this long after login (12 h, a long shift)
SESSION_BYTES = 32
MAX_SESSION_ID = 128  # a cookie longer than this is not ours


class SessionStoreDown(Exception):
    """Redis cannot be reached: no session can be opened or checked now."""


@dataclass(frozen=True)
class Session:
    id: str
    user: str
    kind: str  # password | token
    credential: str  # User.credential_id(kind) at login
    created: float
    address: str


class RedisSessions:
    connect_timeout = 5.0
    reply_timeout = 10.0

    def __init__(self, reactor: Any, url: str, prefix: str, source: UsersSource, *,
                 clock: Any = None, idle: float = IDLE, absolute: float = ABSOLUTE) -> None:
        self.reactor = reactor
        self.source = source
        self.clock = clock or reactor
        self.url = parse_redis_url(url)
        self.prefix = prefix
        self.idle = idle
        self.absolute = absolute
        self._endpoint = conn_mod.make_endpoint(reactor, self.url, self.connect_timeout)
        self._proto: Any = None
        self._connecting: defer.Deferred | None = None
        self._down_logged = False

    def key(self, session_id: str) -> bytes:
        digest = hashlib.sha256(session_id.encode()).hexdigest()
        return f"{self.prefix}session:{digest}".encode()

    # -- connection ------------------------------------------------------

    async def _conn(self) -> Any:
        if self._proto is not None and self._proto.connected:
            return self._proto
        if self._connecting is None:
            self._connecting = defer.ensureDeferred(
                conn_mod.connect(self.reactor, self._endpoint, self.url,
                                 self.connect_timeout, self.reply_timeout))
        waiting = self._connecting
        try:
            proto = await waiting
        except Exception as e:
            if self._connecting is waiting:
                self._connecting = None
            if not self._down_logged:
                log.error("sessions: Redis {url} unreachable ({err}); logins refused until it is back",
                          url=str(self.url), err=e)
                self._down_logged = True
            raise SessionStoreDown(str(e)) from None
        if self._connecting is waiting:
            self._connecting = None
        if self._down_logged:
            log.info("sessions: Redis {url} reachable again", url=str(self.url))
            self._down_logged = False
        self._proto = proto
        return proto

    async def _command(self, *args: bytes) -> Any:
        proto = await self._conn()
        try:
            return await proto.execute_command(*args)
        except (conn_mod.ConnectionError, conn_mod.ResponseError) as e:
            self._proto = None
            if proto.transport is not None:
                proto.transport.abortConnection()
            raise SessionStoreDown(str(e)) from None

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.loseConnection()
        self._proto = None

    # -- sessions --------------------------------------------------------

    def _ttl(self, created: float) -> int:
        left = created + self.absolute - self.clock.seconds()
        return max(0, int(min(self.idle, left)))

    async def create(self, name: str, kind: str, address: str) -> Session:
        """A new session for the user the portal just let in (password or token)."""
        user = self.source.users.get(name)
        if user is None:  # removed while the password was being checked
            raise error.UnauthorizedLogin("user removed")
        session = Session(secrets.token_urlsafe(SESSION_BYTES), user.name, kind,
                          user.credential_id(kind), self.clock.seconds(), address)
        record = json.dumps({"user": session.user, "kind": kind, "credential": session.credential,
                             "created": session.created, "address": address})
        await self._command(b"SET", self.key(session.id), record.encode(),
                            b"EX", str(max(1, self._ttl(session.created))).encode())
        return session

    async def get(self, session_id: str, touch: bool = True) -> Session | None:
        """The live session of that id, its idle timer renewed; None if there is none."""
        if not session_id or len(session_id) > MAX_SESSION_ID:
            return None
        key = self.key(session_id)
        raw = await self._command(b"GET", key)
        if raw is None:
            return None
        try:
            d = json.loads(raw)
            session = Session(session_id, str(d["user"]), str(d["kind"]), str(d["credential"]),
                              float(d["created"]), str(d.get("address", "")))
        except (ValueError, KeyError, TypeError):
            log.warn("sessions: dropping an unreadable session record")
            await self._command(b"DEL", key)
            return None
        ttl = self._ttl(session.created)
        if ttl <= 0:
            await self._command(b"DEL", key)
            return None
        if touch:
            await self._command(b"EXPIRE", key, str(ttl).encode())
        return session

    async def delete(self, session_id: str) -> None:
        if session_id and len(session_id) <= MAX_SESSION_ID:
            await self._command(b"DEL", self.key(session_id))

    def checker(self) -> SessionChecker:
        return SessionChecker(self, self.source)


def still_valid(session: Session, source: UsersSource) -> bool:
    """The session's user still exists with the credential it logged in with."""
    user = source.users.get(session.user)
    return user is not None and user.credential_id(session.kind) == session.credential


@implementer(checkers.ICredentialsChecker)
class SessionChecker:
    credentialInterfaces = (ISessionId,)

    def __init__(self, sessions: RedisSessions, source: UsersSource) -> None:
        self.sessions = sessions
        self.source = source

    def requestAvatarId(self, creds: Any) -> defer.Deferred:
        async def check() -> bytes:
            session = await self.sessions.get(creds.session_id)
            if session is None or not still_valid(session, self.source):
                raise error.UnauthorizedLogin("no such session")
            return session.user.encode()

        return defer.ensureDeferred(check())
