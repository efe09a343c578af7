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


# --- the txredisapi internals the adapter relies on -------------------------------
# callcenter/store/connection.py's _Protocol replaces txredisapi's reply parser
# (it calls ``replyReceived``) and writes MULTI..EXEC in one buffer, taking
# their replies from ``replyQueue`` through ``handle_reply``; neither is public
# API.  If a txredisapi release changes them, these fail before the store does.


def _connected() -> tuple[_Protocol, StringTransport]:
    proto = _Protocol(charset=None, convertNumbers=False, replyTimeout=5)
    proto.factory = _Factory(RedisURL("h"), 5.0)
    transport = StringTransport()
    proto.makeConnection(transport)
    assert proto.connected, "txredisapi no longer marks a connection without AUTH/SELECT ready"
    return proto, transport


def _result(d) -> list:
    got: list = []
    d.addBoth(got.append)
    return got


def test_txredisapi_names_the_adapter_uses_exist():
    import txredisapi

    base = txredisapi.BaseRedisProtocol
    for name in ("replyReceived", "handle_reply", "execute_command", "whenConnected",
                 "whenDisconnected", "connectionLost"):
        assert callable(getattr(base, name, None)), f"txredisapi lost BaseRedisProtocol.{name}"
    proto, _ = _connected()
    assert hasattr(proto.replyQueue, "get"), "txredisapi's replyQueue has no get()"
    try:
        base.handle_reply(ResponseError("x"))
    except ResponseError:
        pass
    else:
        raise AssertionError("txredisapi's handle_reply no longer raises error replies")
    assert base.handle_reply(b"v") == b"v"


def test_transactions_and_commands_share_txredisapis_reply_order():
    proto, transport = _connected()
    ping = _result(proto.execute_command(b"PING"))
    transport.clear()
    tx = _result(proto.transaction([[b"SET", b"k", b"v"], [b"INCR", b"n"]]))
    assert transport.value() == (
        b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
        b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n*1\r\n$4\r\nEXEC\r\n"
    ), "the transaction must go out in one write"
    get = _result(proto.execute_command(b"GET", b"k"))
    transport.clear()
    mget = _result(proto.command([b"MGET", b"k", b"gone"]))
    assert transport.value() == b"*3\r\n$4\r\nMGET\r\n$1\r\nk\r\n$4\r\ngone\r\n"
    wrong = _result(proto.command([b"GET", b"h"]))
    refused = _result(proto.transaction([[b"SET", b"k"]]))
    proto.dataReceived(b"+PONG\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:3\r\n$1\r\nv\r\n"
                       b"*2\r\n$1\r\nv\r\n$-1\r\n-WRONGTYPE not a string\r\n")
    assert ping == ["PONG"] and tx == [["OK", 3]] and get == [b"v"] and mget == [[b"v", None]]
    assert len(wrong) == 1 and wrong[0].check(ResponseError)
    assert refused == []
    proto.dataReceived(b"+OK\r\n-ERR wrong number of arguments\r\n"
                       b"-EXECABORT Transaction discarded because of previous errors.\r\n")
    assert len(refused) == 1 and refused[0].check(ResponseError)
    # EXECABORT only says "previous errors": the failure names the first one.
    assert str(refused[0].value) == "wrong number of arguments"


def test_a_lost_connection_fails_the_waiting_transaction():
    proto, _ = _connected()
    tx = _result(proto.transaction([[b"SET", b"k", b"v"]]))
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    from callcenter.store.connection import ConnectionError

    proto.connectionLost(Failure(ConnectionDone()))
    assert len(tx) == 1 and tx[0].check(ConnectionError)
