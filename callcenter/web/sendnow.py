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


def write_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, sending at once what the socket takes."""
    sock = plain_socket(transport)
    if sock is None or has_queued(transport):
        transport.write(data)
        return
    try:
        sent = sock.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        # A reset or broken pipe: Twisted's own write finds it and closes the
        # connection the usual way (connectionLost, the hub's discard).
        sent = 0
    if sent < len(data):
        transport.write(data[sent:] if sent else data)
