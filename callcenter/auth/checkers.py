"""``twisted.cred`` pieces: the credentials a request can carry, a checker for
each, and the realm that turns a user name into a role avatar.

- ``UsernamePassword`` → ``UsersFileChecker``: argon2id verification in a
  thread (it is slow on purpose and must not stall the reactor);
- ``WallboardToken`` → ``TokenChecker``: a wallboard's long random token;
- ``ProxyUser`` → ``TrustedProxyChecker``: the user name an authenticating
  proxy put in a header, believed only from the listed proxy addresses;
- ``SessionId`` → ``sessions.SessionChecker`` (Redis);
- ``Anonymous`` → ``AllowAnonymousAccess`` only when the service runs open
  (no ``--users``, loopback), mapped to an admin called ``anonymous``.

Avatar ids are user names (bytes, as cred wants); the realm reads the role
from the users file as it is *now*, so a role change applies at the next
connection.  Other checkers (LDAP, ...) can be registered on the same portal.
"""

from __future__ import annotations

import functools
import ipaddress
import secrets
from collections.abc import Iterable
from typing import Any

from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, threads
from zope.interface import Attribute, implementer

from callcenter.auth import roles
from callcenter.auth.source import UsersSource
from callcenter.auth.users import hash_password, verify_password

ANONYMOUS_NAME = "anonymous"
# argon2id costs ~64 MiB and tens of ms per check: at most this many run at
# once, and at most LOGIN_QUEUE wait; past that a login is refused as busy
# (a flood of logins must not eat the memory and CPU the call center needs).
LOGIN_CONCURRENCY = 4
LOGIN_QUEUE = 64


class LoginBusy(Exception):
    """Too many password checks waiting: try again shortly."""


class IWallboardToken(credentials.ICredentials):
    token = Attribute("the token from the wallboard's URL")


class IProxyUser(credentials.ICredentials):
    username = Attribute("the name the proxy asserted")
    peer = Attribute("the address the request came from")


@implementer(IWallboardToken)
class WallboardToken:
    def __init__(self, token: str) -> None:
        self.token = token


@implementer(IProxyUser)
class ProxyUser:
    def __init__(self, username: str, peer: str) -> None:
        self.username = username
        self.peer = peer


def _name(avatar_id: bytes | str) -> str:
    return avatar_id.decode("utf-8") if isinstance(avatar_id, bytes) else avatar_id


@implementer(checkers.ICredentialsChecker)
class UsersFileChecker:
    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, source: UsersSource, reactor: Any, concurrency: int = LOGIN_CONCURRENCY,
                 queue: int = LOGIN_QUEUE) -> None:
        self.source = source
        self.reactor = reactor
        self.queue = queue
        self._slots = defer.DeferredSemaphore(concurrency)

    def requestAvatarId(self, creds: Any) -> defer.Deferred:
        name = _name(creds.username)
        password = _name(creds.password)
        user = self.source.users.get(name)
        hashed = user.password if user is not None else None
        if hashed is None:
            # Same cost for an unknown user as for a wrong password: no user enumeration.
            hashed = _dummy_hash()
        if len(self._slots.waiting) >= self.queue:
            return defer.fail(LoginBusy("too many logins at once; try again shortly"))
        d = self._slots.run(
            threads.deferToThreadPool,
            self.reactor, self.reactor.getThreadPool(), verify_password, hashed, password,
        )

        def checked(ok: bool) -> bytes:
            # The user may have been removed while the hash was being checked.
            if ok and user is not None and self.source.users.get(name) == user:
                return name.encode()
            raise error.UnauthorizedLogin("wrong user name or password")

        return d.addCallback(checked)


@functools.cache
def _dummy_hash() -> str:
    """A real argon2id hash of a random password, verified for unknown users."""
    return hash_password(secrets.token_hex(16))


@implementer(checkers.ICredentialsChecker)
class TokenChecker:
    credentialInterfaces = (IWallboardToken,)

    def __init__(self, source: UsersSource) -> None:
        self.source = source

    def requestAvatarId(self, creds: Any) -> defer.Deferred:
        token = creds.token
        user = self.source.users.by_token(token) if isinstance(token, str) and token else None
        if user is None:
            return defer.fail(error.UnauthorizedLogin("unknown or revoked token"))
        return defer.succeed(user.name.encode())


def parse_networks(value: Iterable[str]) -> tuple[Any, ...]:
    """``127.0.0.1/32,10.0.0.0/8`` parts → networks; ValueError names a bad one."""
    nets = []
    for part in value:
        try:
            nets.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--trusted-proxies: {part!r} is not an address or network") from None
    return tuple(nets)


@implementer(checkers.ICredentialsChecker)
class TrustedProxyChecker:
    credentialInterfaces = (IProxyUser,)

    def __init__(self, source: UsersSource, proxies: Iterable[Any]) -> None:
        self.source = source
        self.proxies = tuple(proxies)

    def trusts(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self.proxies)

    def requestAvatarId(self, creds: Any) -> defer.Deferred:
        if not self.trusts(creds.peer):
            return defer.fail(error.UnauthorizedLogin("header from an untrusted address"))
        user = self.source.users.get(creds.username)
        if user is None:
            return defer.fail(error.UnauthorizedLogin(f"proxy user {creds.username!r} is not in the users file"))
        return defer.succeed(user.name.encode())


@implementer(portal.IRealm)
class DashboardRealm:
    def __init__(self, source: UsersSource | None) -> None:
        self.source = source

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> tuple[Any, Any, Any]:
        if roles.IDashboardUser not in interfaces:
            raise NotImplementedError("only dashboard users here")
        if avatar_id is checkers.ANONYMOUS:
            return roles.IDashboardUser, roles.Admin(ANONYMOUS_NAME), lambda: None
        user = self.source.users.get(_name(avatar_id)) if self.source is not None else None
        if user is None:
            raise error.UnauthorizedLogin("user removed")
        return roles.IDashboardUser, roles.avatar_for(user), lambda: None


def make_portal(source: UsersSource | None, reactor: Any, *, proxies: Iterable[Any] = (),
                sessions: Any = None, concurrency: int = LOGIN_CONCURRENCY) -> portal.Portal:
    """The portal: open (anonymous admin) without a users file, else its checkers."""
    realm = DashboardRealm(source)
    if source is None:
        return portal.Portal(realm, [checkers.AllowAnonymousAccess()])
    chain: list[Any] = [UsersFileChecker(source, reactor, concurrency), TokenChecker(source)]
    proxies = tuple(proxies)
    if proxies:
        chain.append(TrustedProxyChecker(source, proxies))
    if sessions is not None:
        chain.append(sessions.checker())
    return portal.Portal(realm, chain)


class ISessionId(credentials.ICredentials):
    session_id = Attribute("the session cookie's value")


@implementer(ISessionId)
class SessionId:
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
