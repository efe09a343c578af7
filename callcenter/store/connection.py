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

import ipaddress
import re
from typing import Any

import txredisapi
from twisted.internet import defer, protocol, ssl
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint

from callcenter.store.redis_url import RedisURL

RedisProtocol = txredisapi.BaseRedisProtocol
ResponseError = txredisapi.ResponseError
ConnectionError = txredisapi.ConnectionError  # noqa: A001 - txredisapi's name


_INCOMPLETE: Any = object()


class _Array:
    __slots__ = ("left", "items")

    def __init__(self, n: int) -> None:
        self.left = n
        self.items: list[Any] = []


def _parse_one(buf: bytes, pos: int) -> tuple[Any, int]:
    """One RESP2 value or array header at ``pos``: (value, next pos), or (_INCOMPLETE, pos)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return _INCOMPLETE, pos
    kind, line, after = buf[pos], buf[pos + 1 : end], end + 2
    if kind == 0x24:  # $ bulk string
        n = int(line)
        if n < 0:
            return None, after
        if len(buf) < after + n + 2:
            return _INCOMPLETE, pos
        return buf[after : after + n], after + n + 2
    if kind == 0x2A:  # * array: its items follow
        n = int(line)
        return (None if n < 0 else [] if n == 0 else _Array(n)), after
    if kind == 0x2B:  # + status
        return line.decode("utf-8", "replace"), after
    if kind == 0x3A:  # : integer
        return int(line), after
    if kind == 0x2D:  # - error, worded as txredisapi does
        text = line.decode("utf-8", "replace")
        return ResponseError(text[4:] if text.startswith("ERR ") else text), after
    raise txredisapi.InvalidResponse(f"unexpected reply type {bytes([kind])!r}")


def _bulk_items(buf: bytes, pos: int, top: _Array) -> int:
    """``_parse_one`` of the bulk strings at ``pos`` into ``top``, while they
    are whole and ``top`` wants more; returns where it stopped."""
    find, items, size = buf.find, top.items, len(buf)
    left = top.left
    while left and buf.startswith(b"$", pos):
        end = find(b"\r\n", pos)
        if end < 0:
            break
        n = int(buf[pos + 1 : end])
        if n < 0:
            items.append(None)
            pos = end + 2
        elif size < end + n + 4:
            break
        else:
            items.append(buf[end + 2 : end + 2 + n])
            pos = end + n + 4
        left -= 1
    top.left = left
    return pos


# --- adapter: the only place that uses txredisapi internals -----------------------
# Kept after measuring txredisapi's own alternative: its ``HiredisProtocol``
# (what txredisapi uses when the ``hiredis`` package is installed) with
# transactions through the public ``execute_command`` restored 30,000
# records faster, but cost every event's write 60-100 us more reactor time
# (a Deferred, an encoding pass and a reply timer per command), which is the
# cost paid all day (docs/performance.md, "Redis client").  The internals:
# ``dataReceived`` is replaced and hands each reply to ``replyReceived``;
# ``transaction`` takes replies from ``replyQueue`` through ``handle_reply``.
# tests/store/test_connection.py fails if a txredisapi release changes them.


class _Protocol(RedisProtocol):
    """txredisapi's protocol with a streaming reply parser.

    txredisapi's own parser pauses the transport and goes once round the
    reactor (``callLater(0)`` in ``setLineMode``) for every bulk string, so
    restoring 30,000 records took 60,000 reactor turns (1.45 s); this one
    parses whatever has arrived in one go, keeping unfinished arrays between
    reads.  Only the parser is replaced: commands, AUTH/SELECT and reply
    timeouts are txredisapi's.
    """

    _rbuf = b""
    _open: list[_Array] | None = None

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        buf = self._rbuf + data if self._rbuf else data
        stack = self._open if self._open is not None else []
        pos = 0
        try:
            while True:
                if stack and buf.startswith(b"$", pos):
                    # An array's bulk strings (MGET/SMEMBERS: 30,000 at a start) in
                    # one tight loop; it stops at anything else, or the array's end.
                    pos = _bulk_items(buf, pos, stack[-1])
                    if stack[-1].left:
                        if not buf.startswith(b"$", pos):
                            value, pos = _parse_one(buf, pos)  # no bulk string: as below
                            if value is _INCOMPLETE:
                                break
                        else:
                            break  # an item not all here yet
                    else:
                        value = stack.pop().items
                else:
                    value, pos = _parse_one(buf, pos)
                    if value is _INCOMPLETE:
                        break
                if isinstance(value, _Array):
                    stack.append(value)
                    continue
                while stack:  # hand the value to the array it belongs to
                    top = stack[-1]
                    top.items.append(value)
                    top.left -= 1
                    if top.left:
                        break
                    value = stack.pop().items
                else:
                    self.replyReceived(value)
        except (ValueError, txredisapi.InvalidResponse) as e:
            self._rbuf, self._open = b"", None
            self.factory.error = f"unreadable reply from Redis ({e})"
            self.transport.abortConnection()
            return
        self._rbuf, self._open = buf[pos:], stack

    def transaction(self, commands: list[list[bytes]]) -> defer.Deferred:
        """MULTI, ``commands``, EXEC in one write; fires with EXEC's reply list.

        txredisapi's ``execute_command`` costs a Deferred, an encoding pass and
        a write per command; an event's transaction is 4-7 commands, so it is
        encoded here at once.  The replies to MULTI and the queued commands
        ("OK"/"QUEUED", or an error that EXEC then reports as EXECABORT) are
        skipped; replies arrive in order, so the last one is EXEC's.
        """
        if not self.connected:
            raise ConnectionError("Not connected")
        out = [b"*1\r\n$5\r\nMULTI\r\n"]
        for cmd in commands:
            _encode(cmd, out)
        out.append(b"*1\r\n$4\r\nEXEC\r\n")
        self.transport.write(b"".join(out))
        refusals: list[BaseException] = []  # a queued command's error (OOM, READONLY...)
        for _ in range(len(commands) + 1):
            # Plain values, never Failures: nothing to handle, only errors to note.
            self.replyQueue.get().addCallback(
                lambda v: refusals.append(v) if isinstance(v, BaseException) else None)
        d = self.replyQueue.get().addCallback(self.handle_reply)
        d.addErrback(_name_the_refusal, refusals)
        if self.replyTimeout:
            timer = self.callLater(self.replyTimeout, self._no_reply)
            d.addBoth(_cancel, timer)
        return d

    def command(self, args: list[bytes]) -> defer.Deferred:
        """One command of bytes arguments, encoded in one pass (txredisapi's
        ``execute_command`` takes a Python step per argument: 30,000 keys in
        the MGETs of a start); fires with its reply as ``execute_command`` would."""
        if not self.connected:
            raise ConnectionError("Not connected")
        out: list[bytes] = []
        _encode(args, out)
        self.transport.write(b"".join(out))
        d = self.replyQueue.get().addCallback(self.handle_reply)
        if self.replyTimeout:
            timer = self.callLater(self.replyTimeout, self._no_reply)
            d.addBoth(_cancel, timer)
        return d

    def _no_reply(self) -> None:
        self.factory.error = f"no reply within {self.replyTimeout:g} s"
        self.transport.abortConnection()  # every waiting reply then fails as a lost connection

    def connectionLost(self, why: Any) -> None:
        if self.factory.error is None:
            self.factory.error = why.getErrorMessage()  # e.g. a TLS verification failure
        super().connectionLost(why)


class _Factory(protocol.ClientFactory):
    noisy = False
    isLazy = False  # txredisapi: report set-up errors to connectionError(), do not log them

    def __init__(self, url: RedisURL, reply_timeout: float) -> None:
        self.url = url
        self.reply_timeout = reply_timeout
        self.error: str | None = None

    def buildProtocol(self, addr: Any) -> RedisProtocol:
        p = _Protocol(
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
    endpoint: IStreamClientEndpoint
    try:
        ip = ipaddress.ip_address(url.host)
    except ValueError:
        endpoint = HostnameEndpoint(reactor, url.host, url.port, timeout=timeout)
    else:
        # An address needs no resolution, and HostnameEndpoint takes 0.3 s to give
        # up on a refused connection (it waits for other addresses).
        tcp = TCP4ClientEndpoint if ip.version == 4 else TCP6ClientEndpoint
        endpoint = tcp(reactor, url.host, url.port, timeout=timeout)
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
    reactor: IReactorTime,
    endpoint: IStreamClientEndpoint,
    url: RedisURL,
    timeout: float,
    reply_timeout: float,
) -> RedisProtocol:
    """Connect, AUTH and SELECT; fail with a readable reason, within ``timeout``."""
    factory = _Factory(url, reply_timeout)
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
    timer = reactor.callLater(timeout, _abort, proto, factory, timeout)
    try:
        await ready
        # Over TLS the handshake is only known to have worked once a reply came.
        try:
            await proto.execute_command(b"PING")
        except ConnectionError:
            raise ConnectionError(factory.error or "connection closed during set-up") from None
    finally:
        if timer.active():
            timer.cancel()
    return proto


def _encode(args: list[bytes], out: list[bytes]) -> None:
    """One RESP command, its pieces appended to ``out``."""
    out.append(b"*%d\r\n" % len(args))
    out += [b"$%d\r\n%b\r\n" % (len(a), a) for a in args]


def _name_the_refusal(failure: Any, refusals: list[BaseException]) -> Any:
    """EXECABORT says only "previous errors": fail with the first of them
    instead (e.g. "OOM command not allowed..."), which says what to fix."""
    if refusals and str(failure.value).startswith("EXECABORT"):
        raise ResponseError(str(refusals[0]).removeprefix("Redis error: "))
    return failure


def _cancel(result: Any, timer: Any) -> Any:
    if timer.active():
        timer.cancel()
    return result


def _abort(proto: RedisProtocol, factory: _Factory, timeout: float) -> None:
    factory.error = f"no answer to the connection set-up within {timeout:g} s"
    if proto.transport is not None:
        proto.transport.abortConnection()
