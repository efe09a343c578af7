"""The AMI server of the simulated PBX: sessions, authentication, actions.

Answers as Asterisk 22's ``main/manager.c`` and ``apps/app_queue.c`` do,
message for message: the banner, ``Permission denied`` before login,
``Missing action in request`` for a block without ``Action``,
``Invalid/unknown command: X. Use Action: ListCommands ...`` for an unknown
action, ``Authentication failed`` (then the connection is closed, after a
one-second pause as Asterisk's ``sleep(1)``), list responses with
``EventList: start`` ... ``<Name>Complete``.

Input is read line by line like ``get_input()``: ``\\r\\n`` or ``\\n`` ends a
line, a blank line ends a request, header names match case-insensitively and
the value starts after the colon and any blanks.  Lines without a colon are
kept but never match a header, so garbage gets ``Missing action in request``.

Events reach a session after the response to the action it is processing
(Asterisk delivers queued events once the action returns).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Sequence

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.python import log

from callcenter.ami.message import format_message
from callcenter.simulator import render
from callcenter.simulator.model import PBXModel

BANNER = b"Asterisk Call Manager/11.0.0\r\n"

# manager.c's permission bits (perms[] in manager.c).
CATEGORIES = {
    "system": 1, "call": 2, "log": 4, "verbose": 8, "command": 16, "agent": 32, "user": 64,
    "config": 128, "dtmf": 256, "reporting": 512, "cdr": 1024, "dialplan": 2048,
    "originate": 4096, "agi": 8192, "cc": 16384, "aoc": 32768, "test": 65536,
    "security": 131072, "message": 262144,
}
ALL_EVENTS = (1 << 31) - 1
#: The read classes of the service's user in the shipped asterisk-config/manager.conf
#: (tests/deploy checks they agree): the simulator's default, so the demo gets
#: exactly the events a real PBX sends the service (no "system": no FullyBooted).
SHIPPED_READ = "agent,call,user"

MAX_LINE = 1024  # Asterisk's session input buffer
MAX_HEADERS = 128  # AST_MAX_MANHEADERS

_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})
_FALSE = frozenset({"no", "false", "n", "f", "0", "off"})


def ast_true(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def event_mask(value: str) -> int:
    """manager.c's strings_to_mask: -1 for an empty mask (an error)."""
    value = value.strip()
    if not value:
        return -1
    if value.isdigit():
        return int(value)
    low = value.lower()
    if low in _FALSE:
        return 0
    if low in _TRUE:
        return ALL_EVENTS
    mask = 0
    for word in low.split(","):
        word = word.strip()
        if word == "all":
            mask |= ALL_EVENTS
        else:
            mask |= CATEGORIES.get(word, 0)
    return mask


class Request:
    """An action request: raw header lines, looked up like astman_get_header."""

    def __init__(self, lines: list[str]) -> None:
        self.pairs: list[tuple[str, str]] = []
        for line in lines:
            key, sep, value = line.partition(":")
            if sep:
                self.pairs.append((key.lower(), value.lstrip(" \t")))

    def get(self, name: str, skip_empty: bool = False) -> str:
        name = name.lower()
        for key, value in self.pairs:
            if key == name and (value or not skip_empty):
                return value
        return ""

    def getall(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.pairs if key == name]

    @property
    def action(self) -> str:
        return self.get("Action", skip_empty=True)

    @property
    def action_id(self) -> str:
        return self.get("ActionID")


class AMISession(Protocol):
    factory: AMIServerFactory

    def __init__(self) -> None:
        self.authenticated = False
        self.username = ""
        self.readperm = 0  # the user's read classes, from login on (manager.c readperm)
        self.mask = 0  # what this session is sent: readperm, narrowed by Events (send_events)
        self.challenge = ""
        self.closing = False
        self._buf = b""
        self._lines: list[str] = []
        self._too_long = False
        self._hdr_loss = False
        self._busy = False
        self._pending: list[bytes] = []
        self._auth_timer: IDelayedCall | None = None
        self._fail_call: IDelayedCall | None = None
        self.session_id = ""
        self.started = 0.0

    # -- connection --------------------------------------------------------

    def connectionMade(self) -> None:
        f = self.factory
        f.sessions.append(self)
        f.session_count += 1
        self.session_id = f"0x{0x7F6AE0000EE0 + 0x1000 * f.session_count:x}"
        self.started = f.model.now()
        # Like manager.c: no Nagle delay on a session's small writes.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self.transport.write(BANNER)
        if f.authtimeout:
            self._auth_timer = f.reactor.callLater(f.authtimeout, self._auth_timeout)

    def connectionLost(self, reason: object = None) -> None:
        if self in self.factory.sessions:
            self.factory.sessions.remove(self)
        self.factory.listening_changed()
        self.cancel_timers()

    def cancel_timers(self) -> None:
        self.closing = True
        for call in (self._auth_timer, self._fail_call):
            if call is not None and call.active():
                call.cancel()

    def _auth_timeout(self) -> None:
        self._auth_timer = None
        if not self.authenticated:
            self.closing = True
            self.transport.loseConnection()

    # -- input ---------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        buf = self._buf + data if self._buf else data
        while not self.closing:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) >= MAX_LINE:
                    # get_input: no end of line in a full buffer, the message is lost.
                    buf = buf[-1:]
                    self._too_long = True
                break
            line = buf[:nl]
            buf = buf[nl + 1:]
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) >= MAX_LINE:
                self._too_long = True
            elif not line:
                self._end_of_request()
            elif len(self._lines) < MAX_HEADERS:
                # A lone CR inside a line means nothing; echoed back it would break framing.
                self._lines.append(line.decode("utf-8", "replace").replace("\r", ""))
            else:
                self._hdr_loss = True
        self._buf = buf if not self.closing else b""

    def _end_of_request(self) -> None:
        req = Request(self._lines)
        too_long, hdr_loss = self._too_long, self._hdr_loss
        self._lines, self._too_long, self._hdr_loss = [], False, False
        self._busy = True
        try:
            if hdr_loss:
                self.send_error(req, "Too many lines in message or allocation failure")
            elif too_long:
                self.send_error(req, "Failed to parse message: line too long")
            else:
                self._process(req)
        except Exception:  # never let one request kill the session or the PBX
            log.err(None, "simulated AMI: action failed")
            self.send_error(req, "Internal error")
        finally:
            self._busy = False
            self._flush()

    def _process(self, req: Request) -> None:
        action = req.action
        if not action:
            self.send_error(req, "Missing action in request")
            return
        name = action.lower()
        if not self.authenticated and name not in ("login", "logoff", "challenge"):
            self.send_error(req, "Permission denied")
            return
        handler = self.factory.actions.get(name)
        if handler is None:
            self.send_error(req, f"Invalid/unknown command: {action}. Use Action: ListCommands "
                                 "to show available commands.")
            return
        handler(self, req)

    # -- output --------------------------------------------------------------

    def write(self, headers: list[tuple[str, str]]) -> None:
        if not self.closing:
            self.transport.write(format_message(headers))

    def write_many(self, blocks: Sequence[list[tuple[str, str]]]) -> None:
        if not self.closing:
            self.transport.write(b"".join(format_message(h) for h in blocks))

    def respond(self, req: Request, response: str, message: str | None = None,
                extra: Sequence[tuple[str, str]] = ()) -> None:
        headers = [("Response", response)]
        if req.action_id:
            headers.append(("ActionID", req.action_id))
        if message is not None:
            headers.append(("Message", message))
        headers.extend(extra)
        self.write(headers)

    def send_ack(self, req: Request, message: str) -> None:
        self.respond(req, "Success", message)

    def send_error(self, req: Request, message: str) -> None:
        self.respond(req, "Error", message)

    def wants(self, category_bit: int) -> bool:
        return self.authenticated and (self.mask & category_bit) == category_bit

    def deliver(self, data: bytes) -> None:
        if self._busy:
            self._pending.append(data)
        elif not self.closing:
            self.transport.write(data)

    def _flush(self) -> None:
        if self._pending:
            data, self._pending = b"".join(self._pending), []
            if not self.closing:
                self.transport.write(data)

    def address(self, peer: bool) -> str:
        try:
            a = self.transport.getPeer() if peer else self.transport.getHost()
            return f"IPV4/TCP/{a.host}/{a.port}"
        except AttributeError:
            return "IPV4/TCP/127.0.0.1/5038"


# -- actions -----------------------------------------------------------------

def _login(s: AMISession, req: Request) -> None:
    f = s.factory
    if s.authenticated:
        s.send_ack(req, "Already authenticated")
        return
    username = req.get("Username")
    user = next((u for u in f.users if u.lower() == username.lower()), None) if username else None
    ok = False
    if user is not None:
        secret = f.users[user]
        if req.get("AuthType").lower() == "md5":
            key = req.get("Key")
            expected = hashlib.md5((s.challenge + secret).encode()).hexdigest()
            ok = bool(key and s.challenge) and key == expected
        else:
            ok = req.get("Secret") == secret
    if not ok:
        # manager.c: sleep(1), "Authentication failed", then the session ends.
        s.closing = True

        def fail() -> None:
            headers = [("Response", "Error")]
            if req.action_id:
                headers.append(("ActionID", req.action_id))
            headers.append(("Message", "Authentication failed"))
            s.transport.write(format_message(headers))
            s.transport.loseConnection()

        if f.auth_fail_delay:
            s._fail_call = f.reactor.callLater(f.auth_fail_delay, fail)
        else:
            fail()
        return
    s.authenticated = True
    s.username = user
    if s._auth_timer is not None and s._auth_timer.active():
        s._auth_timer.cancel()
    # manager.c authenticate(): send_events = readperm, or readperm & the Events header's mask.
    s.readperm = s.mask = max(event_mask(f.read), 0)
    events = req.get("Events")
    if events:
        mask = event_mask(events)
        if mask >= 0:
            s.mask = s.readperm & mask
    s.send_ack(req, "Authentication accepted")
    if s.wants(CATEGORIES["system"]):
        uptime = int(f.model.now() - f.model.started)
        s.write(render.fully_booted(uptime, uptime))
    f.listening_changed()
    f.broadcast("security", render.successful_auth(
        f.model.now(), s.started, user, s.session_id, s.address(False), s.address(True)))


def _challenge(s: AMISession, req: Request) -> None:
    if req.get("AuthType").lower() == "md5":
        if not s.challenge:
            s.challenge = str(secrets.randbelow(2**31))
        s.respond(req, "Success", None, [("Challenge", s.challenge)])
    else:
        s.send_error(req, "Must specify AuthType")


def _logoff(s: AMISession, req: Request) -> None:
    s.respond(req, "Goodbye", "Thanks for all the fish.")
    s.closing = True
    s.transport.loseConnection()


def _ping(s: AMISession, req: Request) -> None:
    s.respond(req, "Success", None, [("Ping", "Pong"),
                                     ("Timestamp", f"{s.factory.model.now():.6f}")])


def _events(s: AMISession, req: Request) -> None:
    mask = event_mask(req.get("EventMask"))
    if mask < 0:
        s.send_error(req, "Invalid event mask")
        return
    s.mask = s.readperm & mask  # set_eventmask: never more than the user may read
    s.factory.listening_changed()
    s.respond(req, "Success", None, [("Events", "On" if mask else "Off")])


def _queue_pause(s: AMISession, req: Request) -> None:
    interface, paused = req.get("Interface"), req.get("Paused")
    if not interface or not paused:
        s.send_error(req, "Need 'Interface' and 'Paused' parameters.")
        return
    on = ast_true(paused)
    if not s.factory.model.queue_pause(interface, req.get("Queue") or None, on, req.get("Reason")):
        s.send_error(req, "Interface not found")
        return
    s.send_ack(req, "Interface paused successfully" if on else "Interface unpaused successfully")


def _list_answer(s: AMISession, aid: str | None, message: str, complete: str, items: list) -> None:
    """A list action's answer, as Asterisk frames it: ack, items, ...Complete."""
    s.write_many([render.list_ack(aid, message), *items, render.list_complete(complete, aid, len(items))])


def _queue_status(s: AMISession, req: Request) -> None:
    aid = req.action_id or None
    items = render.queue_status_items(s.factory.model, req.get("Queue"), req.get("Member"), aid)
    _list_answer(s, aid, "Queue status will follow", "QueueStatusComplete", items)


def _queue_summary(s: AMISession, req: Request) -> None:
    aid = req.action_id or None
    model = s.factory.model
    now = model.now()
    wanted = req.get("Queue").lower()
    items = [render.queue_summary(q, now, aid) for q in model.queues.values()
             if not wanted or q.name.lower() == wanted]
    _list_answer(s, aid, "Queue summary will follow", "QueueSummaryComplete", items)


def _core_show_channels(s: AMISession, req: Request) -> None:
    aid = req.action_id or None
    model = s.factory.model
    now = model.now()
    items = [render.core_show_channel(ch, now, aid) for ch in model.channels.values()]
    _list_answer(s, aid, "Channels will follow", "CoreShowChannelsComplete", items)


def _variables(req: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in req.getall("Variable"):
        for part in value.split(","):
            name, sep, val = part.partition("=")
            if sep and name.strip():
                out[name.strip()] = val
    return out


def _originate(s: AMISession, req: Request) -> None:
    model = s.factory.model
    channel = req.get("Channel")
    if not channel:
        s.send_error(req, "Channel not specified")
        return
    if "/" not in channel:
        s.send_error(req, "Invalid channel")
        return
    kwargs = dict(callerid=req.get("CallerID"), application=req.get("Application"),
                  data=req.get("Data"), variables=_variables(req),
                  action_id=req.action_id)  # "" still gets an OriginateResponse
    if ast_true(req.get("Async")):
        s.send_ack(req, "Originate successfully queued")
        model.originate(channel, **kwargs)
    elif model.route_exists(channel):
        model.originate(channel, **kwargs)
        s.send_ack(req, "Originate successfully queued")
    else:
        s.send_error(req, "Originate failed")


def _variable(s: AMISession, req: Request) -> tuple[str, str | None] | None:
    """Setvar/Getvar's common checks: (variable, channel), or None once answered."""
    name, channel = req.get("Variable"), req.get("Channel")
    if not name:
        s.send_error(req, "No variable specified")
        return None
    if channel and channel not in s.factory.model.channels:
        s.send_error(req, "No such channel")
        return None
    return name, channel


def _setvar(s: AMISession, req: Request) -> None:
    found = _variable(s, req)
    if found is None:
        return
    name, channel = found
    if not channel:
        s.factory.model.set_global(name, req.get("Value"))
    s.send_ack(req, "Variable Set")


def _getvar(s: AMISession, req: Request) -> None:
    found = _variable(s, req)
    if found is None:
        return
    name, channel = found
    value = "" if channel else s.factory.model.globals.get(name, "")
    s.respond(req, "Success", None, [("Variable", name), ("Value", value)])


def _hangup(s: AMISession, req: Request) -> None:
    model = s.factory.model
    pattern = req.get("Channel")
    if not pattern:
        s.send_error(req, "No channel specified")
        return
    if not pattern.startswith("/"):
        if pattern not in model.channels:
            s.send_error(req, "No such channel")
            return
        model.hangup(pattern)
        s.send_ack(req, "Channel Hungup")
        return
    if len(pattern) < 2 or not pattern.endswith("/"):
        s.send_error(req, "Regex format invalid, Channel param should be /regex/")
        return
    try:
        re.compile(pattern[1:-1])
    except re.error:
        s.send_error(req, f"Regex compile failed on: {pattern}")
        return
    aid = req.action_id or None
    names = model.hangup(pattern)
    tail = [("ActionID", aid)] if aid else []
    items = [[("Event", "ChannelHungup"), ("Channel", name)] + tail for name in names]
    s.write_many([render.list_ack(aid, "Channels hung up will follow"), *items,
                  render.list_complete("ChannelsHungupListComplete", aid, len(items))])


ACTIONS: dict[str, Callable[[AMISession, Request], None]] = {
    "login": _login,
    "challenge": _challenge,
    "logoff": _logoff,
    "ping": _ping,
    "events": _events,
    "queuepause": _queue_pause,
    "queuestatus": _queue_status,
    "queuesummary": _queue_summary,
    "coreshowchannels": _core_show_channels,
    "originate": _originate,
    "setvar": _setvar,
    "getvar": _getvar,
    "hangup": _hangup,
}


class AMIServerFactory(ServerFactory):
    """AMI sessions over one ``PBXModel``; renders each model event once and
    writes it to every logged-in session whose event mask wants it.

    ``read`` is the users' manager.conf ``read=`` classes: a session gets
    only events of those classes, and ``FullyBooted`` after login only if
    they include ``system`` (manager.c ``action_login``)."""

    protocol = AMISession

    def __init__(
        self,
        model: PBXModel,
        reactor: IReactorTime,
        users: dict[str, str],
        *,
        read: str = "all",
        timestampevents: bool = True,
        legacy_pause_name: bool = False,
        auth_fail_delay: float = 1.0,
        authtimeout: float = 30.0,
    ) -> None:
        self.model = model
        self.reactor = reactor
        self.users = dict(users)
        self.read = read  # manager.conf read= of every user
        self.timestampevents = timestampevents
        self.legacy_pause_name = legacy_pause_name
        self.auth_fail_delay = auth_fail_delay
        self.authtimeout = authtimeout
        self.actions = ACTIONS
        self.sessions: list[AMISession] = []
        self.session_count = 0
        self.events_emitted = 0  # model events
        self.events_sent = 0  # event messages written, summed over sessions
        self._any_listener = False
        model.add_listener(self.on_model_event)

    def listening_changed(self) -> None:
        self._any_listener = any(s.authenticated and s.mask for s in self.sessions)

    def on_model_event(self, kind: str, *args: object) -> None:
        self.events_emitted += 1
        if not self._any_listener:
            return  # nobody to render for
        category, headers = render.render_event(kind, args, self.legacy_pause_name)
        self.broadcast(category, headers)

    def broadcast(self, category: str, headers: list[tuple[str, str]]) -> None:
        bit = CATEGORIES.get(category, 0)
        targets = [s for s in self.sessions if s.wants(bit)]
        if not targets:
            return
        if self.timestampevents:
            headers.insert(2, ("Timestamp", f"{self.model.now():.6f}"))
        data = format_message(headers)
        self.events_sent += len(targets)
        for s in targets:
            s.deliver(data)

    def close_sessions(self) -> None:
        for s in list(self.sessions):
            s.cancel_timers()
            s.transport.loseConnection()
