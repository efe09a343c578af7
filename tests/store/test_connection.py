"""The streaming reply parser that replaces txredisapi's, fed in every possible split."""

from __future__ import annotations

from twisted.internet.testing import StringTransport

from callcenter.store.connection import ResponseError, _Factory, _Protocol
from callcenter.store.redis_url import RedisURL

WIRE = (
    b"+OK\r\n"
    b"*3\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:7\r\n-WRONGTYPE Operation against a key\r\n"
    b"$0\r\n\r\n"
    b"*0\r\n"
    b"*-1\r\n"
    b"-ERR unknown command\r\n"
    b"$5\r\na\r\nb\xff\r\n"
)


def _replies(chunks: list[bytes]) -> list:
    proto = _Protocol(charset=None, convertNumbers=False)
    proto.factory = _Factory(RedisURL("h"), 1.0)
    got: list = []
    proto.replyReceived = got.append  # type: ignore[method-assign]
    proto.makeConnection(StringTransport())
    for chunk in chunks:
        proto.dataReceived(chunk)
    return got


def _check(got: list) -> None:
    assert len(got) == 7
    assert got[0] == "OK"
    assert got[1][0] == b"abc" and got[1][1] is None
    assert got[1][2][0] == 7 and isinstance(got[1][2][1], ResponseError)
    assert str(got[1][2][1]).startswith("WRONGTYPE")
    assert got[2:5] == [b"", [], None]
    assert isinstance(got[5], ResponseError) and str(got[5]) == "unknown command"
    assert got[6] == b"a\r\nb\xff"  # binary-safe, CRLF inside a value


def test_whole():
    _check(_replies([WIRE]))


def test_every_split_point():
    for i in range(1, len(WIRE)):
        _check(_replies([WIRE[:i], WIRE[i:]]))


def test_byte_by_byte():
    _check(_replies([WIRE[i : i + 1] for i in range(len(WIRE))]))


def test_garbage_drops_the_connection():
    proto = _Protocol(charset=None, convertNumbers=False)
    proto.factory = _Factory(RedisURL("h"), 1.0)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"?what\r\n")
    assert transport.disconnecting
    assert "unreadable reply" in (proto.factory.error or "")
