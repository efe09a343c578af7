"""The AMI client protocol: framing, login, actions by ActionID, event dispatch.

One ``AMIProtocol`` per TCP connection.  It never raises out of
``dataReceived``: malformed input is logged (rate-limited) and skipped, and
when framing is lost (a message that never ends) the connection is aborted
so that the owner (``AMIClient``) reconnects and the stream resyncs.

Hot path: most of what a busy Asterisk sends (``Newexten``, ``VarSet``,
``DeviceStateChange``...) is of no interest.  An event is only decoded and
parsed when its name is in ``wanted`` or it carries the ActionID of one of our
pending list actions (the name and ActionID are found by byte searches), and
even then its headers are parsed lazily (see ``message.Message``).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from callcenter.ami.errors import AMIConnectionLost, AMIError
from callcenter.ami.message import (
    FramingError,
    Message,
    Splitter,
    format_action,
    parse_text,
    unchecked_text,
)
from callcenter.logthrottle import LogThrottle

log = Logger()

# Response words that mean the action worked (Pong: Asterisk 1.4's Ping answer).
_SUCCESS = frozenset({"Success", "Follows", "Goodbye", "Pong"})
_ACTIONID = "\nActionID: "


#: Most items one list action (QueueStatus, CoreShowChannels) may collect: a
#: 10,000-agent centre answers ~20,000; an answer that never completes must
#: not grow without end.  Over it the action fails and the connection drops.
MAX_LIST_ITEMS = 200_000
# A header that can only start a message: found inside a block, it means the
# sender left out the blank line that ends the message before it.  (Not
# ``Response:``: OriginateResponse events carry one as an ordinary header.)
_GLUE = "\nEvent: "


@dataclass(slots=True)
class _Pending:
    name: str
    deferred: Deferred
    is_list: bool
    items: list[Message] = field(default_factory=list)  # a list action's [response, *events]
    answered: bool = False  # a list action's response has come


class AMIProtocol(Protocol):
    """Client side of one AMI connection.

    ``dispatch(msg)`` receives every event that is not part of one of our
    list actions and whose name is in ``wanted`` (``None``: every event).
    The owner may replace ``wanted`` at any time (e.g. as listeners come
    and go).  ``on_connection_made(proto)`` / ``on_connection_lost(proto,
    reason)`` tell the owner about the connection's life.
    """

    def __init__(
        self,
        dispatch: Callable[[Message], object] | None = None,
        *,
        wanted: Container[str] | None = None,
        clock: IReactorTime | None = None,
        on_connection_made: Callable[[AMIProtocol], object] | None = None,
        on_connection_lost: Callable[[AMIProtocol, Failure], object] | None = None,
        action_id_prefix: str | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.wanted = wanted
        self._on_made = on_connection_made
        self._on_lost = on_connection_lost
        self._throttle = LogThrottle(log, clock)
        self._splitter = Splitter()
        self._pending: dict[str, _Pending] = {}
        # Unique per connection, so a broadcast OriginateResponse carrying
        # another client's ActionID never completes one of ours.
        self._prefix = action_id_prefix or f"cc-{secrets.token_hex(3)}-"
        self._ids = itertools.count(1)
        self._booted: list[Deferred[None]] | None = []  # None once FullyBooted seen
        self.max_list_items = MAX_LIST_ITEMS
        self.glued_messages = 0  # blocks that held two messages (no blank line between)
        #: True once this connection has received ``FullyBooted`` (only a
        #: session that may read "system" ever does).
        self.fully_booted = False
        self._closing = False
        self.connected = False
        self.logged_in = False
        # Counters, for diagnostics and the benchmark.
        self.messages_received = 0
        self.events_skipped = 0
        self.junk_skipped = 0

    # -- connection life ---------------------------------------------------

    @property
    def banner(self) -> str | None:
        """The server's first line, e.g. ``Asterisk Call Manager/11.0.0``."""
        return self._splitter.banner

    @property
    def pending_actions(self) -> int:
        return len(self._pending)

    def connectionMade(self) -> None:
        self.connected = True
        if self._on_made is not None:
            try:
                self._on_made(self)
            except Exception:
                log.failure("AMI connection-made handler failed")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.connected = False
        self.logged_in = False
        self._closing = True
        why = reason.getErrorMessage() if reason is not None else "closed"
        pending, self._pending = self._pending, {}
        for p in pending.values():
            p.deferred.errback(Failure(AMIConnectionLost(
                f"AMI connection lost before the answer to {p.name}: {why}")))
        booted, self._booted = self._booted, None
        for d in booted or ():
            d.errback(Failure(AMIConnectionLost(f"AMI connection lost before FullyBooted: {why}")))
        if self._on_lost is not None:
            try:
                self._on_lost(self, reason)
            except Exception:
                log.failure("AMI connection-lost handler failed")

    def abort(self) -> None:
        """Drop the connection now (the owner reconnects); ignore what follows."""
        self._closing = True
        if self.transport is not None:
            self.transport.abortConnection()

    # -- input ---------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        error: FramingError | None = None
        try:
            blocks = self._splitter.feed_text(data)
        except FramingError as e:
            blocks, error = e.blocks, e
        except Exception:  # a bug in the splitter must not kill the reactor's read loop
            log.failure("AMI splitter failed; dropping the connection")
            self.abort()
            return
        if not blocks:
            texts: list[str] = []
        elif blocks[0].__class__ is bytes:  # not one UTF-8 decode: block by block
            texts = [self._decode(block) for block in blocks]  # type: ignore[arg-type]
        else:
            texts = blocks  # type: ignore[assignment]
        self.messages_received += len(texts)
        handle = self._handle_block
        # Only a list action's items are events with our ActionID.  One sent
        # while this read is handled cannot have items in it (they were read
        # before it was sent), so this is asked once per read.  A pending Ping
        # (its answer queued behind a busy stream) keeps the fast path.
        lists = self._pending and any(p.is_list for p in self._pending.values())
        for block in texts:
            if block.startswith("Event: ") and not lists and _GLUE not in block:
                # Most of a busy stream: an event, no list action of ours
                # pending.  Its name decides, here, whether it is read at all.
                try:
                    nl = block.find("\n")
                    name = block[7:nl] if nl > 0 else block[7:]
                    wanted = self.wanted
                    if name == "FullyBooted" or wanted is None or name in wanted:
                        self._event(block, name)
                    else:
                        self.events_skipped += 1
                except Exception:
                    self._handler_failed(block)
            else:
                for piece in self._unglue([block]) if _GLUE in block else (block,):
                    try:
                        handle(piece)
                    except Exception:
                        self._handler_failed(piece)
                    if self._closing:
                        return
            if self._closing:
                return
        if error is not None:
            log.warn(
                "AMI framing lost ({error}); dropping the connection to {peer} to resync",
                error=str(error), peer=self._peer())
            self.abort()

    def _handler_failed(self, block: str) -> None:
        self._throttle.failure(
            "ami.handler", "Error while handling AMI message {sample!r}", sample=block[:80])

    def _unglue(self, blocks: list[str]) -> list[str]:
        """Split a block that holds two messages (a sender left out the blank
        line between them): without this the second would be swallowed as
        extra headers of the first."""
        out: list[str] = []
        for block in blocks:
            # Leading garbage before a message is cut off by _handle_block.
            cut = block.find(_GLUE) if block.startswith(("Event: ", "Response: ")) else -1
            while cut > 0:
                out.append(block[:cut])
                block = block[cut + 1 :]
                cut = block.find(_GLUE)
                self.glued_messages += 1
                self._throttle.warn(
                    "glued", "AMI message without its blank line from {peer}; split in two",
                    peer=self._peer())
            out.append(block)
        return out

    def _handle_block(self, block: str) -> None:
        if block.startswith("Event: "):
            nl = block.find("\n")
            name = block[7:nl] if nl > 0 else block[7:]
            if self._pending and any(p.is_list for p in self._pending.values()):
                i = block.find(_ACTIONID)
                if i > 0:
                    i += 11
                    j = block.find("\n", i)
                    aid = block[i:j] if j > 0 else block[i:]
                    p = self._pending.get(aid)
                    if p is not None and p.is_list:
                        self._list_item(aid, p, self._parse(block), name, "EventList" in block)
                        return
            self._event(block, name)
        elif block.startswith("Response: "):
            self._response(self._parse(block))
        else:
            self._junk(block)

    def _event(self, block: str, name: str) -> None:
        """An event that is no list item: to ``dispatch`` if wanted."""
        if name == "FullyBooted":
            self._fully_booted()
        wanted = self.wanted
        if wanted is not None and name not in wanted:
            self.events_skipped += 1
            return
        # Parsed lazily, and checked only when something looks it up by
        # name (a listener that reads every header never needs the check).
        msg = unchecked_text(block, name)
        dispatch = self.dispatch
        if dispatch is not None:
            dispatch(msg)
        skipped = msg.skipped_lines()
        if skipped:
            self._skipped_lines(block, skipped)

    def _decode(self, block: bytes) -> str:
        try:
            return block.decode("utf-8")
        except UnicodeDecodeError:
            # Keep the message (an ISO-8859-1 caller name must not lose us a
            # QueueCallerJoin); the bad bytes become U+FFFD.
            text = block.decode("utf-8", "replace")
            if block.startswith((b"Event: ", b"Response: ")):  # junk gets its own warning
                self._throttle.warn(
                    "ami.utf8", "Non-UTF-8 bytes in AMI message {first!r} from {peer} replaced by U+FFFD",
                    first=text.partition("\n")[0], peer=self._peer())
            return text

    def _parse(self, text: str) -> Message:
        msg = parse_text(text)
        # A lazy message has no line without ": " (or one hidden by a line with
        # two, which the cheap check cannot see: it is skipped all the same).
        if not msg.lazy and msg.body and msg.name != "Follows":
            self._skipped_lines(text, msg.body)
        return msg

    def _skipped_lines(self, text: str, lines: list[str]) -> None:
        self._throttle.warn(
            "ami.nocolon", "Skipped {n} line(s) without a colon in AMI message {first!r}: {line!r}",
            n=len(lines), first=text.partition("\n")[0], line=lines[0][:80])

    def _junk(self, block: str) -> None:
        # Junk that was not ended by a blank line is glued to the next message:
        # resync on the first line that starts one.
        starts = [i for i in (block.find("\nEvent: "), block.find("\nResponse: ")) if i >= 0]
        self.junk_skipped += 1
        if starts:
            i = min(starts) + 1
            self._throttle.warn(
                "ami.junk", "Skipped {n} bytes of non-AMI data from {peer}: {sample!r}",
                n=len(block[:i].encode()), peer=self._peer(), sample=block[: min(i, 80)])
            self._handle_block(block[i:])
        else:
            self._throttle.warn(
                "ami.junk", "Skipped a malformed AMI message ({n} bytes) from {peer}: {sample!r}",
                n=len(block.encode()), peer=self._peer(), sample=block[:80])

    def _response(self, msg: Message) -> None:
        aid = msg.action_id
        p = self._pending.get(aid) if aid is not None else None
        if p is None or p.answered:
            self.unhandled_response(msg)
            return
        if msg.name not in _SUCCESS:
            del self._pending[aid]
            text = msg.get("Message") or f"{p.name} failed: Response: {msg.name}"
            p.deferred.errback(Failure(AMIError(text, msg)))
            return
        if not p.is_list:
            del self._pending[aid]
            p.deferred.callback(msg)
            return
        p.answered = True
        p.items.insert(0, msg)
        note = (msg.get("Message") or "").lower()
        if "EventList" not in msg and "follow" not in note:
            # Not a list after all (e.g. "No such queue" answered as Success).
            del self._pending[aid]
            p.deferred.callback(p.items)

    def _list_item(self, aid: str, p: _Pending, msg: Message, name: str, marked: bool) -> None:
        """``name``: the event's name; ``marked``: its text holds "EventList"
        (only such an item can have the header: 30,000 items are not searched)."""
        if len(p.items) >= self.max_list_items:
            del self._pending[aid]
            p.deferred.errback(Failure(AMIError(
                f"{p.name} answered more than {self.max_list_items} items; giving it up")))
            log.warn("AMI {name}: more than {n} list items; dropping the connection to resync",
                     name=p.name, n=self.max_list_items)
            self.abort()
            return
        p.items.append(msg)
        marker = msg.get("EventList") if marked else None
        if marker == "Complete" or (marker is None and name.endswith("Complete")):
            del self._pending[aid]
            p.deferred.callback(p.items)

    def unhandled_response(self, msg: Message) -> None:
        """A response to no pending action of ours (late, or not ours)."""
        self._throttle.warn(
            "ami.unmatched", "Ignored AMI response {response!r} with ActionID {aid!r}: no such pending action",
            response=msg.name, aid=msg.action_id)

    def _fully_booted(self) -> None:
        self.fully_booted = True
        booted, self._booted = self._booted, None
        for d in booted or ():
            d.callback(None)

    def when_booted(self) -> Deferred[None]:
        """Fires once the server has sent ``FullyBooted`` on this connection."""
        if self._booted is None:
            return fail(AMIConnectionLost("connection closed")) if self._closing else succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._booted and self._booted.remove(d))
        self._booted.append(d)
        return d

    def _peer(self) -> str:
        try:
            peer = self.transport.getPeer()
        except Exception:
            return "?"
        host, port = getattr(peer, "host", None), getattr(peer, "port", None)
        return f"{host}:{port}" if host is not None else str(peer)

    # -- output --------------------------------------------------------------

    def action(
        self,
        name: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        **kw: str,
    ) -> Deferred[Message]:
        """Send an action; fires with its response, errbacks with ``AMIError``
        (``Response: Error``) or ``AMIConnectionLost``.  Cancelling forgets it."""
        return self._send(name, headers, kw, is_list=False)

    def list_action(
        self,
        name: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        **kw: str,
    ) -> Deferred[list[Message]]:
        """Send a list action (QueueStatus, CoreShowChannels...); fires with
        ``[response, *events]`` up to and including the ``...Complete`` event."""
        return self._send(name, headers, kw, is_list=True)

    def _send(self, name: str, headers, kw: dict[str, str], is_list: bool) -> Deferred:
        if not self.connected or self._closing:
            return fail(AMIConnectionLost(f"AMI connection closed; cannot send {name}"))
        pairs: list[tuple[str, str]] = []
        if headers:
            pairs.extend(headers.items() if isinstance(headers, Mapping) else headers)
        pairs.extend(kw.items())
        if any(k.lower() == "actionid" for k, _ in pairs):
            return fail(ValueError("ActionID is set by the protocol"))
        aid = f"{self._prefix}{next(self._ids)}"
        try:
            data = format_action(name, [("ActionID", aid), *pairs])
        except ValueError as e:
            return fail(e)

        def cancel(d: Deferred) -> None:
            self._pending.pop(aid, None)

        d: Deferred = Deferred(cancel)
        self._pending[aid] = _Pending(name, d, is_list)
        self.transport.write(data)
        return d

    def login(
        self, username: str, secret: str, md5: bool = False, events: str | None = None
    ) -> Deferred[Message]:
        """Log in with a plain ``Secret`` or, with ``md5``, the ``Challenge`` /
        ``Key = md5(challenge + secret)`` exchange.  ``events`` is sent as
        Login's ``Events`` header (``on``, ``off`` or a class list) when given.
        A rejected login errbacks with ``AMIError("Authentication failed")``."""
        extra = {"Events": events} if events is not None else {}
        if md5:
            d = self.action("Challenge", AuthType="MD5")

            def answer(resp: Message) -> Deferred[Message]:
                challenge = resp.get("Challenge")
                if not challenge:
                    raise AMIError("no Challenge in the answer to Challenge", resp)
                key = hashlib.md5((challenge + secret).encode("utf-8")).hexdigest()
                return self.action("Login", AuthType="MD5", Username=username, Key=key, **extra)

            d.addCallback(answer)
        else:
            d = self.action("Login", Username=username, Secret=secret, **extra)

        def done(resp: Message) -> Message:
            self.logged_in = True
            return resp

        return d.addCallback(done)
