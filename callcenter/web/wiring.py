"""From ``twistd callcenter``'s options to the dashboard's ``Access``: users
file, portal, Redis sessions, login throttle, audit file, Host/Origin policy.

Refuses, with one line (``AccessConfigError``), to serve the page on a
non-loopback address without ``--users``, or without ``--public-url`` (the
service must know the names it is reached by).  On loopback without
``--users`` it runs open: one warning, everyone is an admin.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from callcenter.auth.audit import AuditLog
from callcenter.auth.checkers import TrustedProxyChecker, make_portal, parse_networks
from callcenter.auth.sessions import RedisSessions
from callcenter.auth.source import UsersSource
from callcenter.auth.throttle import LoginThrottle
from callcenter.auth.users import UsersFileError
from callcenter.report import ReportWriterError
from callcenter.web.access import Access
from callcenter.web.origin import OriginPolicy, is_loopback_name

log = Logger(namespace="callcenter.web")


class AccessConfigError(Exception):
    """The options do not give a safe dashboard; str() is one line."""


def listen_interface(listen: str) -> str | None:
    """The address a ``tcp:``/``ssl:`` endpoint string binds, "" for all, None for other kinds."""
    kind = listen.split(":", 1)[0].lower()
    if kind not in ("tcp", "tcp6", "ssl"):
        return None
    m = re.search(r"(?:^|:)interface=((?:\\:|[^:])*)", listen)
    return m.group(1).replace("\\:", ":") if m else ""


def is_loopback_listen(listen: str) -> bool:
    interface = listen_interface(listen)
    if not interface:
        return False
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return is_loopback_name(interface)


def check_exposure(listen: str, users: str | None, public_urls: list[str]) -> bool:
    """Whether ``listen`` is loopback; AccessConfigError if the page would be exposed unsafely."""
    loopback = is_loopback_listen(listen)
    if not loopback and not users:
        raise AccessConfigError(
            f"no --users: refusing to serve the dashboard on the non-loopback --listen "
            f"{listen!r} without logins (see docs/security.md)"
        )
    if not loopback and not public_urls:
        raise AccessConfigError(
            f"--listen {listen!r} is not on loopback: give --public-url "
            "(the https://name users reach the dashboard by)"
        )
    return loopback


@dataclass
class AccessParts:
    access: Access
    source: UsersSource | None
    sessions: RedisSessions | None
    audit: AuditLog

    def start(self) -> None:
        if self.source is not None:
            self.source.start()

    def reload(self) -> None:
        """SIGHUP: the users file again, and a new audit file after rotation."""
        if self.source is not None:
            self.source.reload()
        self.audit.reopen()

    def stop(self) -> None:
        if self.source is not None:
            self.source.stop()
        if self.sessions is not None:
            self.sessions.close()
        self.audit.close()


def make_access(opts: Any, reactor: Any, clock: Any = None) -> AccessParts:
    clock = clock or reactor
    check_exposure(opts["listen"], opts["users"], opts["public-url"])
    try:
        origins = OriginPolicy(opts["public-url"], opts["allowed-origins"])
    except ValueError as e:
        raise AccessConfigError(str(e)) from None
    audit = AuditLog(opts["audit"], clock, opts["timezone"])
    try:
        audit.open()
    except ReportWriterError as e:
        raise AccessConfigError(str(e)) from None
    if not opts["users"]:
        log.warn("no --users: the dashboard runs open on loopback, every visitor may pause every agent")
        access = Access(make_portal(None, reactor), clock=clock, origins=origins, open_access=True,
                        audit=audit)
        return AccessParts(access, None, None, audit)
    try:
        source = UsersSource(opts["users"], clock, opts["users-watch"])
    except UsersFileError as e:
        raise AccessConfigError(str(e)) from None
    try:
        sessions = RedisSessions(reactor, opts["redis"], opts["redis-prefix"], source, clock=clock,
                                 idle=opts["session-idle"], absolute=opts["session-max"])
        proxies = parse_networks(opts["trusted-proxies"])
    except ValueError as e:
        raise AccessConfigError(str(e)) from None
    header = opts["trusted-proxy-header"]
    portal = make_portal(source, reactor, proxies=proxies if header else (), sessions=sessions,
                         concurrency=opts["login-concurrency"])
    throttle = LoginThrottle(clock, user_limit=opts["login-attempts-user"],
                             address_limit=opts["login-attempts-address"],
                             window=opts["login-window"], size=opts["login-table-size"])
    trust = TrustedProxyChecker(source, proxies).trusts
    access = Access(portal, clock=clock, origins=origins, open_access=False, sessions=sessions,
                    throttle=throttle, audit=audit, proxy_header=header, trusted=trust,
                    recheck=opts["session-recheck"])
    source.listen(lambda _users: access.recheck_all())
    log.info("dashboard logins: {n} users from {path}", n=len(source.users), path=opts["users"])
    return AccessParts(access, source, sessions, audit)
