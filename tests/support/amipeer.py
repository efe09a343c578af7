"""The Asterisk end of an AMI connection, shared by the tests' fake PBXes.

It speaks like Asterisk 22 (see shared/ami-traces/REFERENCE.md): a one-line
banner, ``Challenge``/``Login`` (plain or MD5), ``FullyBooted`` after login,
``Ping``, "Permission denied" for anything else before login, canned answers
(keyed by action name, case-insensitive like Asterisk, their ActionIDs
rewritten to the action's) and "Invalid/unknown command" for the rest.

Each test folder subclasses ``AsteriskManagerFactory``: the factory holds the
settings and the hooks (``record``, ``answered``), the protocol stays generic.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from callcenter.ami.message import Message, Splitter, format_message, parse_message

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
CHALLENGE = "840215733"

# A canned answer: bytes to send, or a function of (connection, action) that
# sends by itself or returns the bytes (None: send nothing).
Answer = bytes | Callable[["AsteriskManager", Message], bytes | None]


def retag(data: bytes, action_id: str) -> bytes:
    """Give every message of a recorded answer the ActionID of the action being answered."""
    return re.sub(rb"(?m)^ActionID: [^\r\n]*", b"ActionID: " + action_id.encode(), data)


def fully_booted(uptime: int | None = None) -> bytes:
    """Asterisk's FullyBooted event (without Uptime/LastReload when ``uptime`` is None)."""
    pairs = [("Event", "FullyBooted"), ("Privilege", "system,all")]
    if uptime is not None:
        pairs += [("Uptime", str(uptime)), ("LastReload", str(uptime))]
    pairs.append(("Status", "Fully Booted"))
    return format_message(pairs)


class AsteriskManager(Protocol):
    """One client connection; everything it knows comes from its factory."""

    def __init__(self, factory: AsteriskManagerFactory) -> None:
        self.factory = factory
        self.splitter = Splitter(expect_banner=False)
        self.logged_in = False
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

    def send(self, data: bytes) -> None:
        self.transport.write(data)

    def reply(self, action: Message, *pairs: tuple[str, str]) -> None:
        """``pairs[0]`` (Response/Event), the action's ActionID if it had one, the rest."""
        headers = [pairs[0]]
        if action.action_id is not None:
            headers.append(("ActionID", action.action_id))
        headers.extend(pairs[1:])
        self.send(format_message(headers))

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
        self.reply(msg, ("Response", "Success"), ("Message", "Authentication accepted"))
        if f.fully_booted:
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
    """Settings of the fake Asterisk; tests may change them between connections."""

    noisy = False
    banner = BANNER
    booted_event = fully_booted()
    ping_timestamp = "0"
    close_on_reject = True  # Asterisk hangs up after a failed login
    forget_closed = False  # keep closed connections in ``connections``

    def __init__(self, username: str | None = None, secret: str | None = None) -> None:
        self.username = username  # None: any
        self.secret = secret  # None: any
        self.reject = False  # refuse every login
        self.silent = False  # read actions, answer none
        self.answer_ping = True
        self.fully_booted = True
        self.answers: dict[str, Answer] = {}
        self.on_login: Callable[[AsteriskManager], None] | None = None
        self.connections: list[AsteriskManager] = []
        self.actions: list = []
        self.logins = 0
        self.rejections = 0

    def buildProtocol(self, addr: object) -> AsteriskManager:
        return AsteriskManager(self)

    def record(self, msg: Message) -> None:
        """Every action received, answered or not."""
        self.actions.append(msg)

    def answer_for(self, name: str) -> Answer | None:
        """The canned answer to action ``name`` (lower case), if any."""
        for key, answer in self.answers.items():
            if key.lower() == name:
                return answer
        return None

    def answered(self, conn: AsteriskManager, msg: Message) -> None:
        """Called after a canned answer was sent (e.g. to stream events after a snapshot)."""
