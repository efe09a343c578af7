"""One Redis connection at a time, made with txredisapi's protocol.

We use txredisapi for what it is good at (the RESP protocol, AUTH/SELECT at
connect) but not its connection pool: the pool queues commands forever while
Redis is down, and the store must instead notice the outage at once, keep
serving from memory and rewrite everything when Redis is back.  So the store
owns reconnection and backoff, and talks to one ``RedisProtocol``.

txredisapi 1.6.0 on Twisted 26 / Python 3.11 works, with these quirks (all
handled here): ``convertNumbers`` (on by default) turns ids such as
``1795665079.50`` into floats, so it is off and replies are raw bytes;
``ssl_context_factory=True`` would give an unverified TLS context, so TLS is
set up here with ``optionsForClientTLS``; a failed AUTH/SELECT only calls
``factory.connectionError()``, so our factory records it; the protocol's
internal ``callLater`` is the global reactor's.
"""

from __future__ import annotations

import re
from typing import Any

import txredisapi
from twisted.internet import defer, protocol, ssl
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint

from callcenter.store.redis_url import RedisURL

RedisProtocol = txredisapi.RedisProtocol
ResponseError = txredisapi.ResponseError
ConnectionError = txredisapi.ConnectionError  # noqa: A001 - txredisapi's name


class _Factory(protocol.ClientFactory):
    noisy = False
    isLazy = False  # txredisapi: report set-up errors to connectionError(), do not log them

    def __init__(self, url: RedisURL, reply_timeout: float) -> None:
        self.url = url
        self.reply_timeout = reply_timeout
        self.error: str | None = None

    def buildProtocol(self, addr: Any) -> RedisProtocol:
        p = RedisProtocol(
            charset=None,
            replyTimeout=self.reply_timeout,
            password=self.url.password,
            dbid=self.url.db or None,
            convertNumbers=False,
            username=self.url.username,
        )
        p.factory = self
        return p

    # txredisapi calls these when AUTH or SELECT fails during connectionMade.
    def stopTrying(self) -> None:
        pass

    def connectionError(self, why: str) -> None:
        self.error = why


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"--redis: cannot read {path} ({e.strerror})") from None


def make_endpoint(reactor: Any, url: RedisURL, timeout: float) -> IStreamClientEndpoint:
    endpoint: IStreamClientEndpoint = HostnameEndpoint(reactor, url.host, url.port, timeout=timeout)
    if not url.tls:
        return endpoint
    try:
        trust: Any = None
        if url.ca_certs:
            pems = re.findall(
                rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                _read(url.ca_certs),
                re.S,
            )
            if not pems:
                raise ValueError(f"--redis: no certificate in {url.ca_certs}")
            trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(p) for p in pems])
        client = None
        if url.certfile and url.keyfile:
            client = ssl.PrivateCertificate.loadPEM(
                _read(url.certfile) + b"\n" + _read(url.keyfile)
            )
        options = ssl.optionsForClientTLS(url.host, trustRoot=trust, clientCertificate=client)
    except ValueError:
        raise
    except Exception as e:  # OpenSSL errors for unreadable PEM files
        raise ValueError(f"--redis: bad TLS certificate or key ({e})") from None
    return wrapClientTLS(options, endpoint)


async def connect(
    reactor: IReactorTime, endpoint: IStreamClientEndpoint, url: RedisURL, timeout: float
) -> RedisProtocol:
    """Connect, AUTH and SELECT; fail with a readable reason, within ``timeout``."""
    factory = _Factory(url, reply_timeout=timeout)
    proto: RedisProtocol = await endpoint.connect(factory)
    ready: defer.Deferred = defer.Deferred()

    def done(value: Any) -> None:
        if not ready.called:
            ready.callback(value)

    def lost(_: Any) -> None:
        if not ready.called:
            ready.errback(ConnectionError(factory.error or "connection closed during set-up"))

    proto.whenConnected().addCallback(done)
    proto.whenDisconnected().addCallback(lost)
    timer = reactor.callLater(timeout, _abort, proto)
    try:
        await ready
    finally:
        if timer.active():
            timer.cancel()
    return proto


def _abort(proto: RedisProtocol) -> None:
    if proto.transport is not None:
        proto.transport.abortConnection()
