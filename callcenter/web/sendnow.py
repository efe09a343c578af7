"""Write a dashboard's frame to its socket at once when nothing is queued before it.

Twisted's ``transport.write`` never writes at once: it appends to the
transport's buffer, registers the socket for writing (``epoll_ctl``), and
only the next reactor turn sends it and unregisters it (``epoll_ctl`` again),
through the reactor's per-descriptor dispatch.  For one frame pushed to 500
dashboards that is 500 × (two syscalls + the dispatch) on top of the 500
``send``s themselves: about 30 µs per dashboard per frame, against about
10 µs for a plain ``send`` (``docs/performance.md``, "Realistic load").

``write_now`` sends straight to the socket when the transport holds nothing
(so bytes never overtake earlier ones) and hands whatever the kernel did not
take to ``transport.write``, which then owns the order, the backpressure
(the producer is paused as before) and the discovery of a lost connection.
TLS transports, and any transport this adapter does not recognise, always
go through ``transport.write``.

Adapter: Twisted has no public "is your buffer empty" nor "send now", so this
reads ``twisted.internet.abstract.FileDescriptor``'s buffer attributes
(``dataBuffer``, ``offset``, ``_tempDataBuffer``) and the TCP connection's
``TLS`` flag.  ``tests/web/test_sendnow.py`` fails loudly if a Twisted
release renames or retypes them, so an upgrade cannot silently reorder or
lose bytes; until then, this module is the only place that knows.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.tcp import Connection


def plain_socket(transport: Any) -> Any:
    """The socket of a plain (not TLS) TCP connection that is open; else None."""
    if not isinstance(transport, Connection) or transport.TLS:
        return None
    if not transport.connected or transport.disconnecting or transport.disconnected:
        return None
    return transport.getHandle()


def has_queued(transport: Connection) -> bool:
    """Bytes written to ``transport`` that it has not yet sent."""
    return bool(transport._tempDataBuffer) or len(transport.dataBuffer) > transport.offset


class DirectWriter:
    """``write_now`` for one connection, with what never changes looked up once.

    The fan-out writes each frame to hundreds of dashboards: per write this
    checks the same things as ``plain_socket`` and ``has_queued`` (inline:
    their calls were a third of the Python time per dashboard), with the
    socket's ``send`` found when the connection opened."""

    __slots__ = ("_transport", "_send")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        sock = plain_socket(transport)
        self._send = sock.send if sock is not None else None

    def write(self, data: bytes) -> None:
        t = self._transport
        send = self._send
        if (send is None or t.TLS or not t.connected or t.disconnecting
                or t._tempDataBuffer or len(t.dataBuffer) > t.offset):
            t.write(data)
            return
        try:
            sent = send(data)
        except OSError:
            # Full (BlockingIOError), interrupted, or a reset or broken pipe:
            # Twisted's own write sends it later, or finds the error and closes
            # the connection the usual way (connectionLost, the hub's discard).
            sent = 0
        if sent < len(data):
            t.write(data[sent:] if sent else data)


def write_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sending at once what the socket takes."""
    DirectWriter(transport).write(data)
