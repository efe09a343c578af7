"""The tests' one scripted fake Asterisk Manager (AMI server end).

It speaks like Asterisk 22's ``main/manager.c`` (see shared/ami-traces/REFERENCE.md):

* a one-line banner; ``Challenge``/``Login`` with a plain ``Secret`` or the
  MD5 ``Key``; "Permission denied" for anything else before login; a
  rejected login gets "Authentication failed" and (by default) a close;
* read classes: a session reads the events of the user's ``read`` classes
  (``read="agent,call,user"`` is the shipped manager.conf user, ``SHIPPED_READ``),
  narrowed by Login's ``Events`` header (``readperm & mask``).  An event
  reaches the session only if the session may read every class its
  ``Privilege`` names; responses and the items of a list answer always do;
* ``FullyBooted`` right after the Login answer only to a session that reads
  ``system`` on a PBX that has booted (``action_login``); ``boot()`` ends a
  boot and sends ``FullyBooted`` to those sessions (``publish_fully_booted``);
* ``Ping``; scripted replies by action name (case-insensitive, like Asterisk;
  their ActionIDs rewritten to the action's), list answers framed as
  Asterisk frames them (``list_answer``), "Invalid/unknown command" for the rest;
* events pushed on demand to every session (``push``) or one (``conn.push``),
  or once after the answer to an action (``then_push``: a recording after its
  snapshot), filtered by the session's classes; ``drop()``/``close()`` end a
  connection; hooks ``on_login``/``on_answer`` for anything else.

The factory serves real TCP (``reactor.listenTCP``/endpoints) or, through
``MemoryNet``, the in-memory connections a ``MemoryReactorClock`` makes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from deploy import asterisk_conf
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from callcenter.ami.message import Message, Splitter, format_message, parse_message
from callcenter.simulator.server import CATEGORIES, event_mask

__all__ = [
    "BANNER", "CHALLENGE", "SHIPPED_READ", "Answer", "AsteriskManager", "AsteriskManagerFactory",
    "Link", "MemoryNet", "fully_booted", "list_answer", "retag", "shipped_read",
]

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
CHALLENGE = "840215733"
MANAGER_CONF = Path(__file__).resolve().parents[2] / "asterisk-config" / "manager.conf"


def shipped_read() -> str:
    """The ``read=`` classes of the service's user in the shipped manager.conf."""
    user = asterisk_conf.section(asterisk_conf.parse(MANAGER_CONF), "callcenter")
    value = user.get("read")
    assert value is not None, f"no read= for [callcenter] in {MANAGER_CONF}"
    return value


SHIPPED_READ = shipped_read()

# A scripted reply: bytes to send, or a function of (connection, action) that
# sends by itself or returns the bytes (None: send nothing).
Answer = bytes | Callable[["AsteriskManager", Message], bytes | None]

_ACTION_ID = re.compile(rb"(?m)^ActionID: [^\r\n]*")
_PRIVILEGE = re.compile(rb"(?m)^Privilege: ([^\r\n]*)")
_END = re.compile(rb"\r?\n\r?\n")


def retag(data: bytes, action_id: str) -> bytes:
    """Give every message of a recorded answer the ActionID of the action being answered."""
    return _ACTION_ID.sub(b"ActionID: " + action_id.encode(), data)


def fully_booted(uptime: int | None = None) -> bytes:
    """Asterisk's FullyBooted event (without Uptime/LastReload when ``uptime`` is None)."""
    pairs = [("Event", "FullyBooted"), ("Privilege", "system,all")]
    if uptime is not None:
        pairs += [("Uptime", str(uptime)), ("LastReload", str(uptime))]
    pairs.append(("Status", "Fully Booted"))
    return format_message(pairs)


def list_answer(action_id: str, complete: str, items: Iterable[Message], message: str) -> bytes:
    """A list action's answer as Asterisk writes it: start, items (ActionID last), Complete."""
    items = list(items)
    out = [format_message([("Response", "Success"), ("ActionID", action_id), ("EventList", "start"),
                           ("Message", message)])]
    out += [format_message([*m.headers, ("ActionID", action_id)]) for m in items]
    out.append(format_message([("Event", complete), ("ActionID", action_id), ("EventList", "Complete"),
                               ("ListItems", str(len(items)))]))
    return b"".join(out)


def classes_mask(classes: str) -> int:
    """manager.conf's ``read=`` (and Login's ``Events``) as manager.c's bit mask."""
    mask = event_mask(classes)
    return max(mask, 0)


def _privilege_mask(block: bytes) -> int | None:
    """The classes an event's ``Privilege`` names ("all" is on every event), None without one."""
    m = _PRIVILEGE.search(block)
    if m is None:
        return None
    words = [w.strip() for w in m.group(1).decode("ascii", "replace").lower().split(",")]
    return sum(CATEGORIES.get(w, 0) for w in set(words) if w != "all")


def _messages(data: bytes) -> list[bytes]:
    """Split bytes into whole messages (each keeps its terminating blank line)."""
    out, start = [], 0
    for m in _END.finditer(data):
        out.append(data[start:m.end()])
        start = m.end()
    if start < len(data):
        out.append(data[start:])
    return out


class AsteriskManager(Protocol):
    """One client connection; its settings come from its factory."""

    def __init__(self, factory: AsteriskManagerFactory) -> None:
        self.factory = factory
        self.splitter = Splitter(expect_banner=False)
        self.logged_in = False
        self.send_events = 0  # manager.c's session->send_events
        self.challenge: str | None = None
        self.actions: list[Message] = []
        self.closed = False

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.transport.write(self.factory.banner)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        if self.factory.forget_closed and self in self.factory.connections:
            self.factory.connections.remove(self)

    # -- output --------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Raw bytes (responses, list answers, a recording): no class filter."""
        if not self.closed:
            self.transport.write(data)

    def reads(self, block: bytes) -> bool:
        """Would Asterisk deliver this event to this session?"""
        needed = _privilege_mask(block)
        if needed is None:
            return True
        return self.logged_in and needed & self.send_events == needed

    def push(self, data: bytes) -> None:
        """Events, as Asterisk delivers them: only those of the session's classes."""
        if self.closed:
            return
        wanted = [b for b in _messages(data) if self.reads(b)]
        if wanted:
            self.transport.write(b"".join(wanted))

    def reply(self, action: Message, *pairs: tuple[str, str]) -> None:
        """``pairs[0]`` (Response/Event), the action's ActionID if it had one, the rest."""
        headers = [pairs[0]]
        if action.action_id is not None:
            headers.append(("ActionID", action.action_id))
        headers.extend(pairs[1:])
        self.send(format_message(headers))

    def drop(self) -> None:
        """Abort the connection (a crashed PBX, a cut cable)."""
        self.transport.abortConnection()

    def close(self) -> None:
        """Close the connection cleanly (Asterisk stopping)."""
        self.transport.loseConnection()

    # -- input ---------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        for block in self.splitter.feed(data):
            msg = parse_message(block)
            self.actions.append(msg)
            self.factory.record(msg)
            self.handle(msg)

    def handle(self, msg: Message) -> None:
        name = (msg.get("Action") or "").lower()
        f = self.factory
        if f.silent:
            return
        if name == "challenge":
            self.challenge = CHALLENGE
            self.reply(msg, ("Response", "Success"), ("Challenge", CHALLENGE))
        elif name == "login":
            self._login(msg)
        elif not self.logged_in:
            self.reply(msg, ("Response", "Error"), ("Message", "Permission denied"))
        elif name == "ping":
            if f.answer_ping:
                self.reply(msg, ("Response", "Success"), ("Ping", "Pong"), ("Timestamp", f.ping_timestamp))
        elif (answer := f.answer_for(name)) is not None:
            data = answer(self, msg) if callable(answer) else answer
            if data is not None:
                self.send(retag(data, msg.action_id or ""))
            f.answered(self, msg)
        else:
            self.reply(msg, ("Response", "Error"), ("Message", "Invalid/unknown command"))

    def _login(self, msg: Message) -> None:
        f = self.factory
        if not self._good_login(msg):
            f.rejections += 1
            self.reply(msg, ("Response", "Error"), ("Message", "Authentication failed"))
            if f.close_on_reject:
                self.transport.loseConnection()
            return
        self.logged_in = True
        f.logins += 1
        # manager.c authenticate(): the Events header narrows the user's read classes.
        self.send_events = classes_mask(f.read)
        events = msg.get("Events")
        if events:
            mask = event_mask(events)
            if mask >= 0:
                self.send_events &= mask
        self.reply(msg, ("Response", "Success"), ("Message", "Authentication accepted"))
        if f.booted and self.send_events & CATEGORIES["system"]:
            self.send(f.booted_event)
        if f.on_login is not None:
            f.on_login(self)

    def _good_login(self, msg: Message) -> bool:
        f = self.factory
        if f.reject or (f.username is not None and msg.get("Username") != f.username):
            return False
        if (msg.get("AuthType") or "").lower() == "md5":
            if self.challenge is None:
                return False
            key = hashlib.md5((self.challenge + (f.secret or "")).encode()).hexdigest()
            return f.secret is None or msg.get("Key") == key
        return f.secret is None or msg.get("Secret") == f.secret


class AsteriskManagerFactory(Factory):
    """Settings of the fake Asterisk; tests may change them between connections.

    ``username``/``secret`` None accept any; ``read`` is the user's read classes
    (manager.conf ``read=``); ``booted`` False plays a PBX still starting up.
    """

    noisy = False
    banner = BANNER
    booted_event = fully_booted(13)
    ping_timestamp = "1795665189.547300"
    close_on_reject = True  # Asterisk hangs up after a failed login
    forget_closed = False  # keep closed connections in ``connections``

    def __init__(self, username: str | None = None, secret: str | None = None, *,
                 read: str = "all") -> None:
        self.username = username
        self.secret = secret
        self.read = read
        self.booted = True
        self.reject = False  # refuse every login
        self.silent = False  # read actions, answer none
        self.answer_ping = True
        self.answers: dict[str, Answer] = {}
        self.on_login: Callable[[AsteriskManager], None] | None = None
        self.on_answer: Callable[[AsteriskManager, Message], None] | None = None
        self._after: dict[str, bytes] = {}  # action (lower case) -> events pushed once after its answer
        self.connections: list[AsteriskManager] = []
        self.actions: list[Message] = []
        self.logins = 0
        self.rejections = 0

    def buildProtocol(self, addr: object) -> AsteriskManager:
        return AsteriskManager(self)

    # -- script ------------------------------------------------------------

    def answer_list(self, action: str, complete: str, items: Callable[[], Iterable[Message]],
                    message: str = "will follow") -> None:
        """Answer list action ``action`` with ``items()`` (read at each request)."""
        self.answers[action] = lambda _conn, msg: list_answer(msg.action_id or "", complete, items(), message)

    def then_push(self, action: str, events: bytes) -> None:
        """Push ``events`` once, right after the first answer to ``action`` (on any
        connection): the PBX's events after its snapshot follow it, as on Asterisk."""
        self._after[action.lower()] = events

    def push(self, data: bytes) -> None:
        """Events to every logged-in session that may read them."""
        for conn in list(self.connections):
            conn.push(data)

    def boot(self) -> None:
        """The PBX finishes booting: FullyBooted to every session that reads ``system``."""
        self.booted = True
        self.push(self.booted_event)

    def drop_all(self) -> None:
        for conn in list(self.connections):
            if not conn.closed:
                conn.drop()

    # -- hooks for subclasses and tests ------------------------------------

    def record(self, msg: Message) -> None:
        """Every action received, answered or not."""
        self.actions.append(msg)

    def actions_named(self, name: str) -> list[Message]:
        return [m for m in self.actions if (m.get("Action") or "").lower() == name.lower()]

    def answer_for(self, name: str) -> Answer | None:
        """The scripted reply to action ``name`` (lower case), if any."""
        for key, answer in self.answers.items():
            if key.lower() == name:
                return answer
        return None

    def answered(self, conn: AsteriskManager, msg: Message) -> None:
        """Called after a scripted reply was sent."""
        events = self._after.pop((msg.get("Action") or "").lower(), None)
        if events is not None:
            conn.push(events)
        if self.on_answer is not None:
            self.on_answer(conn, msg)


# -- in memory, for a client on a MemoryReactorClock -------------------------

class Link:
    """An in-memory connection between a client protocol and an AsteriskManager.

    Bytes move only when ``pump`` runs (every helper pumps), so a test sees
    the exchange step by step.  A side that calls loseConnection or
    abortConnection closes both ends on the next pump.
    """

    def __init__(self, client: Protocol, server: AsteriskManager) -> None:
        self.client = client
        self.server = server
        self.client_transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 40000),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 5038))
        self.server_transport = StringTransport()
        self.closed = False
        client.makeConnection(self.client_transport)
        server.makeConnection(self.server_transport)
        self.pump()

    def pump(self) -> None:
        for _ in range(10_000):
            if self.closed:
                return
            up = self.client_transport.value()
            self.client_transport.clear()
            if up:
                self.server.dataReceived(up)
            down = self.server_transport.value()
            self.server_transport.clear()
            if down:
                self.client.dataReceived(down)
            if self.client_transport.disconnecting or self.server_transport.disconnecting:
                aborted = self.client_transport.disconnected or self.server_transport.disconnected
                self.close(ConnectionLost("aborted") if aborted else ConnectionDone("closed"))
                return
            if not up and not down:
                return
        raise AssertionError("the link never went quiet")

    def send(self, data: bytes) -> None:
        """Server → client raw, then pump."""
        self.server.send(data)
        self.pump()

    def push(self, data: bytes) -> None:
        """Events server → client through the session's class filter, then pump."""
        self.server.push(data)
        self.pump()

    def close(self, reason: Exception | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        why = Failure(reason or ConnectionDone("closed"))
        self.server.connectionLost(why)
        self.client.connectionLost(why)


class MemoryNet:
    """Completes (or refuses) the TCP connects a client makes on a MemoryReactorClock."""

    def __init__(self, reactor: MemoryReactorClock, server: AsteriskManagerFactory) -> None:
        self.reactor = reactor
        self.server = server
        self._handled = 0
        self.links: list[Link] = []

    @property
    def waiting(self) -> int:
        """Connection attempts not yet accepted or refused."""
        return len(self.reactor.tcpClients) - self._handled

    def accept(self) -> Link:
        assert self.waiting, "no connection attempt to accept"
        _host, _port, factory, _timeout, _bind = self.reactor.tcpClients[self._handled]
        self._handled += 1
        addr = IPv4Address("TCP", "127.0.0.1", 5038)
        link = Link(factory.buildProtocol(addr), self.server.buildProtocol(addr))
        self.links.append(link)
        return link

    def refuse(self, reason: Exception | None = None) -> None:
        assert self.waiting, "no connection attempt to refuse"
        _host, _port, factory, _timeout, _bind = self.reactor.tcpClients[self._handled]
        connector = self.reactor.connectors[self._handled]
        self._handled += 1
        factory.clientConnectionFailed(connector, Failure(reason or ConnectionRefusedError()))
