"""The AMI wire format, shared by the client and the simulated PBX.

A message is a block of ``Key: Value`` lines ended by a blank line.  The
banner (``Asterisk Call Manager/11.0.0``) is a single line with no blank line
after it.  Old Asterisk versions answer ``Command`` with ``Response: Follows``
and raw output lines up to ``--END COMMAND--``, which may contain blank lines;
newer ones send ``Response: Success`` with one ``Output:`` header per line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import itemgetter

# A message (with its first terminating newline) longer than this means framing
# is lost: the only safe recovery is to drop the connection and resync.
MAX_MESSAGE_BYTES = 64 * 1024

_END_COMMAND = b"--END COMMAND--"
_END_COMMAND_TEXT = "--END COMMAND--"
# Headers Asterisk puts before raw ``Response: Follows`` output (manager.c).
_FOLLOWS_HEADERS = frozenset({"Response", "Privilege", "ActionID", "Message"})


class FramingError(Exception):
    """The byte stream can no longer be split into messages.

    ``blocks`` holds the complete blocks found in the same ``feed`` before the
    bad one: they are sound and may still be processed.
    """

    def __init__(self, message: str, blocks: list[bytes] | list[str] | None = None) -> None:
        super().__init__(message)
        self.blocks: list[bytes] | list[str] = blocks or []


class Message:
    """One AMI message: ordered headers (names may repeat) plus raw body lines.

    ``msg["Key"]`` and ``msg.get("Key")`` return the first value of a header;
    ``getall`` returns every value, in order.  Header names are matched
    exactly as Asterisk sends them; ``get_ci`` ignores case, for UserEvent
    headers whose case comes from whoever wrote the dialplan.

    Messages from ``parse_message`` are lazy: the first few lookups by name
    search the raw text for ``"\nKey: "`` (no string is made for the headers
    nobody reads); anything else, or more lookups, parses it all once.  The
    answers are the same either way.
    """

    # Lazy: _text is the raw block and _first is None.  Parsed: _text is None,
    # _pairs holds the (key, value) pairs as 2-lists or 2-tuples (``headers``
    # makes tuples of them on first use), _first the first value of each name.
    __slots__ = ("_text", "_lookups", "_pairs", "_headers", "_body", "_first", "_event")

    def __init__(self, headers: list[tuple[str, str]], body: list[str] | None = None) -> None:
        self._text: str | None = None
        self._event: str | None = None  # the event name when the protocol already cut it out
        self._lookups = 0
        self._pairs: list = headers
        self._headers: list[tuple[str, str]] | None = headers
        self._body: list[str] = body or []
        # First value wins for repeated names: build from the end.
        self._first: dict[str, str] | None = dict(reversed(headers))

    @classmethod
    def _lazy(cls, text: str, lookups: int = 0, event: str | None = None) -> Message:
        msg = cls.__new__(cls)
        msg._text = text
        msg._lookups = lookups
        msg._first = None
        msg._event = event
        return msg

    @classmethod
    def of(cls, *pairs: tuple[str, str], **kw: str) -> Message:
        return cls(list(pairs) + list(kw.items()))

    def _parse(self) -> dict[str, str]:
        first = self._first
        if first is None:
            text = self._text
            assert text is not None
            # _split_headers' fast path, written out: one call less for every
            # event read in full.
            pairs = [line.split(": ", 1) for line in text.split("\n")]
            try:
                first = dict(reversed(pairs))
                self._body = []
            except ValueError:
                pairs, first, self._body = _split_headers(text)
            self._pairs = pairs
            self._headers = None
            self._first = first
            self._text = None
        return first

    def _find(self, key: str) -> str | None:
        """First value of ``key`` in the raw text, as the full parse would give it."""
        lookups = self._lookups = self._lookups + 1
        text = self._text
        assert text is not None
        if lookups == 0 and not _searchable(text):  # the first lookup of an unchecked message
            return self._parse().get(key)
        needles = _NEEDLES.get(key)
        if needles is None:
            needles = _needles(key)
        if not needles or lookups > _LAZY_LOOKUPS:
            return self._parse().get(key)
        if text.startswith(needles[1]):
            start = len(needles[1])
        else:
            i = text.find(needles[0])
            if i < 0:
                return None
            start = i + len(needles[0])
        end = text.find("\n", start)
        return text[start:end] if end >= 0 else text[start:]

    @property
    def lazy(self) -> bool:
        """True until something needed the full parse."""
        return self._first is None

    def skipped_lines(self) -> list[str]:
        """The lines that are no header (no ``": "``, not ``Key:``): ``body``
        of a message that is not command output.  A lazy message is searched
        (the cheap check of ``parse_text``) and parsed only if that finds some;
        a line with two ``": "`` hides one with none from that check (then
        this is empty, and lookups are right all the same)."""
        if self._first is None:
            if self._lookups >= 0 or _searchable(self._text):  # type: ignore[arg-type]
                self._lookups = max(self._lookups, 0)
                return []
            self._parse()
        return self._body

    @property
    def headers(self) -> list[tuple[str, str]]:
        self._parse()
        if self._headers is None:
            self._headers = list(map(tuple, self._pairs))  # type: ignore[arg-type]
        return self._headers

    @headers.setter
    def headers(self, headers: list[tuple[str, str]]) -> None:
        self._parse()
        self._event = None
        self._pairs = self._headers = headers
        self._first = dict(reversed(headers))

    @property
    def body(self) -> list[str]:
        self._parse()
        return self._body

    @body.setter
    def body(self, body: list[str]) -> None:
        self._parse()
        self._body = body

    def _head(self) -> tuple[str, str]:
        if self._event is not None:
            return "Event", self._event
        if self._first is None:
            key, sep, value = self._text.partition("\n")[0].partition(": ")  # type: ignore[union-attr]
            if sep:
                return key, value
            self._parse()
        pairs = self._pairs
        return (pairs[0][0], pairs[0][1]) if pairs else ("", "")

    @property
    def kind(self) -> str:
        """``Event``, ``Response`` or ``Action`` (what a server reads)."""
        return self._head()[0]

    @property
    def name(self) -> str:
        """The event name, the response word, or the action name."""
        return self._head()[1]

    @property
    def event(self) -> str | None:
        event = self._event
        return event if event is not None else self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def output(self) -> list[str]:
        """Command output lines: ``Output:`` headers (Asterisk 14+) or the raw body."""
        lines = self.getall("Output")
        return lines if lines else list(self.body)

    def __getitem__(self, key: str) -> str:
        first = self._first
        value = first.get(key) if first is not None else self._find(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: str) -> bool:
        first = self._first
        return key in first if first is not None else self._find(key) is not None

    def get(self, key: str, default: str | None = None) -> str | None:
        first = self._first
        if first is not None:
            return first.get(key, default)
        value = self._find(key)
        return default if value is None else value

    def get_ci(self, key: str, default: str | None = None) -> str | None:
        value = self.get(key)
        if value is not None:
            return value
        self._parse()
        low = key.lower()
        for k, v in self._pairs:
            if k.lower() == low:
                return v
        return default

    def getall(self, key: str) -> list[str]:
        self._parse()
        return [v for k, v in self._pairs if k == key]

    def as_dict(self) -> dict[str, str]:
        first = self._first
        return (first if first is not None else self._parse()).copy()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    def __repr__(self) -> str:
        return f"Message({self.headers!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.headers, self.body) == (other.headers, other.body)

    def to_bytes(self) -> bytes:
        return format_message(self.headers, self.body)


# Lookups by search before a lazy message is parsed in full: a search costs
# about a tenth of the parse of a typical 20-header event.
_LAZY_LOOKUPS = 8
# ``_lookups`` of a message from ``unchecked_text``: its first lookup runs the
# check that ``parse_text`` runs up front.
_UNCHECKED = -1
# key -> ("\nKey: ", "Key: "), or () for a key no header line can have.
_NEEDLES: dict[str, tuple[str, ...]] = {}


def _needles(key: str) -> tuple[str, ...]:
    needles: tuple[str, ...] = () if ("\n" in key or ": " in key) else ("\n" + key + ": ", key + ": ")
    if len(_NEEDLES) < 4096:
        _NEEDLES[key] = needles
    return needles


class FieldReader:
    """Reads the same headers from many messages of one kind (a list action's
    30,000 items at a resync): ``read(msg)`` gives the first value of each of
    ``names`` (None when absent), exactly what ``msg.get`` gives for each.

    Asterisk sends every item of a list with the same header lines in the
    same order.  The line layout of the first item read (its header names, in
    order) becomes one pattern; an item whose raw text matches it in full is
    read by that single C-level match instead of a search or split per
    header.  Any other item is parsed as usual (and its layout learnt, up to
    ``max_layouts``).  A full match means every line is ``Name: value`` with
    that name before its first ``": "``: the pairs the full parse would give.
    """

    __slots__ = ("names", "_layouts", "_max")

    def __init__(self, names: Sequence[str], max_layouts: int = 8) -> None:
        self.names = tuple(names)
        # (pattern of the whole text, picks the names' values from its groups + (None,))
        self._layouts: list[tuple[re.Pattern[str], itemgetter]] = []
        self._max = max_layouts

    def read(self, msg: Message) -> tuple[str | None, ...]:
        if not self.names:
            return ()
        text = msg._text
        if text is not None:
            for pattern, pick in self._layouts:
                m = pattern.fullmatch(text)
                if m is not None:
                    if msg._lookups == _UNCHECKED:
                        # Every line is "Name: value": the check of an unchecked
                        # message (parse_text's) would pass, so it is not run.
                        msg._lookups = 0
                    return pick(m.groups() + (None,))
            if len(self._layouts) < self._max:
                self._learn(text)
        first = msg._parse()
        return tuple(first.get(name) for name in self.names)

    def _learn(self, text: str) -> None:
        keys: list[str] = []
        for line in text.split("\n"):
            key, sep, _ = line.partition(": ")
            if not sep or len(keys) >= 128:
                return  # not all "Name: value" lines: such items are parsed one by one
            keys.append(key)
        pattern = re.compile("\n".join(re.escape(k) + ": ([^\n]*)" for k in keys))
        none = len(keys)  # the index of the None added after the groups
        where = [keys.index(n) if n in keys else none for n in self.names]
        pick = itemgetter(*where) if len(where) > 1 else (lambda g, i=where[0]: (g[i],))
        self._layouts.append((pattern, pick))


def parse_message(block: bytes) -> Message:
    """Parse one message block (lines joined by ``\\n``, no trailing blank line).

    Lines without ``": "`` become header ``Key`` with an empty value when they
    end in ``:``; anything else goes to ``body`` (command output, or junk the
    caller may log).  Bytes that are not UTF-8 become U+FFFD.
    """
    return parse_text(block.decode("utf-8", "replace"))


def parse_text(text: str) -> Message:
    """``parse_message`` for an already decoded block.

    The result is lazy when searching the text finds what the full parse
    would: no ``Key:`` line without a space (a header with an empty value),
    and not fewer ``": "`` than lines (then some line is body, parsed now so
    that ``lazy`` is False and the caller can look at ``body`` cheaply).
    """
    if text.startswith("Response: Follows"):
        return _parse_follows(text)
    if not _searchable(text):
        pairs, first, body = _split_headers(text)
        msg = Message.__new__(Message)
        msg._text = msg._event = None
        msg._lookups = 0
        msg._pairs, msg._headers, msg._body, msg._first = pairs, None, body, first
        return msg
    return Message._lazy(text)


def unchecked_text(text: str, event: str | None = None) -> Message:
    """``parse_text`` for a block that starts with ``Event: `` (so it is no
    command output), with its check put off: a full parse (``as_dict``,
    ``headers``...) needs none, so an event read in full is never searched;
    the first lookup by name runs it.  ``skipped_lines`` tells the lines
    that are no header either way.  ``event``: the name after ``Event: ``
    when the caller already cut it out (then ``name``/``event`` cost nothing)."""
    msg = _new(Message)  # what Message._lazy does, one call less: one per event read
    msg._text = text
    msg._lookups = _UNCHECKED
    msg._first = None
    msg._event = event
    return msg


_new = object.__new__


def _searchable(text: str) -> bool:
    """Can lookups search ``text``?  Not when a ``Key:`` line (a header with
    an empty value) may be in it, nor when some line is body (fewer ``": "``
    than lines: then the caller wants ``body``, which the full parse gives)."""
    return not (":\n" in text or text.endswith(":") or text.count(": ") <= text.count("\n"))


def _split_headers(text: str) -> tuple[list, dict[str, str], list[str]]:
    # Fast path, all C loops: every line is "Key: Value".  A line without
    # ": " gives a 1-item list and dict() refuses it: take the careful path.
    pairs = [line.split(": ", 1) for line in text.split("\n")]
    try:
        return pairs, dict(reversed(pairs)), []
    except ValueError:
        msg = _parse_lines(text.split("\n"))
        return msg._pairs, msg._first, msg._body  # type: ignore[return-value]


def _parse_lines(lines: Iterable[str]) -> Message:
    headers: list[tuple[str, str]] = []
    body: list[str] = []
    for line in lines:
        key, sep, value = line.partition(": ")
        if sep:
            headers.append((key, value))
        elif line.endswith(":") and " " not in line:
            headers.append((line[:-1], ""))
        elif line:
            body.append(line)
    return Message(headers, body)


def _parse_follows(text: str) -> Message:
    """Old-style command output: a few headers, then raw lines (kept verbatim,
    blank ones included) up to the ``--END COMMAND--`` marker, which is dropped."""
    lines = text.split("\n")
    headers: list[tuple[str, str]] = []
    start = len(lines)
    for i, line in enumerate(lines):
        key, sep, value = line.partition(": ")
        if not sep or key not in _FOLLOWS_HEADERS:
            start = i
            break
        headers.append((key, value))
    body = lines[start:]
    if body and body[-1].endswith(_END_COMMAND_TEXT):
        # Output that does not end in a newline shares its last line with the marker.
        last = body.pop()[: -len(_END_COMMAND_TEXT)]
        if last:
            body.append(last)
    return Message(headers, body)


def format_message(pairs: Iterable[tuple[str, str]], body: Iterable[str] = ()) -> bytes:
    """Serialise headers for the wire, refusing values that would inject lines."""
    out = []
    for key, value in pairs:
        value = str(value)
        if "\r" in key or "\n" in key or "\r" in value or "\n" in value or ":" in key:
            raise ValueError(f"AMI header {key!r} holds a line break or colon")
        out.append(f"{key}: {value}\r\n")
    for line in body:
        out.append(f"{line}\r\n")
    out.append("\r\n")
    return "".join(out).encode("utf-8")


def format_action(
    name: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    **kw: str,
) -> bytes:
    """``Action: name`` then ``headers`` (a mapping, or pairs when a name must
    repeat, e.g. Originate's ``Variable``) then the keyword headers."""
    pairs = [("Action", name)]
    if headers:
        pairs.extend(headers.items() if isinstance(headers, Mapping) else headers)
    pairs.extend(kw.items())
    return format_message(pairs)


class Splitter:
    """Splits a TCP byte stream into message blocks.

    Fragmentation is arbitrary: the same bytes fed in 1-byte chunks yield the
    same blocks (and raise ``FramingError`` at the same message).  ``\\r`` is
    dropped up front (one C-level pass per chunk), so ``\\r\\n`` and bare
    ``\\n`` streams are handled alike.  With ``expect_banner`` the first line
    is taken as the banner when it has no ``": "``.

    While a message trickles in, new chunks are only looked at for the end of
    the message and kept in a list: feeding byte by byte stays linear.
    """

    def __init__(self, expect_banner: bool = True, max_message: int = MAX_MESSAGE_BYTES) -> None:
        self._parts: list[bytes] = []  # unconsumed bytes of an incomplete message
        self._size = 0
        self._tail_nl = False  # the unconsumed bytes end with "\n"
        self._follows = False  # they start an old-style command output
        self._expect_banner = expect_banner
        self._max = max_message
        self.banner: str | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete blocks (possibly none)."""
        return self._feed(data, False)  # type: ignore[return-value]

    def feed_text(self, data: bytes) -> list[str] | list[bytes]:
        """``feed``, with the blocks decoded when that is one step: as ``str``
        when the fast path of ``feed`` applies and this feed's complete
        blocks are valid UTF-8 (one ``decode`` for all of them); otherwise
        the blocks of ``feed``, as bytes, for the caller to decode one by one
        (and say which held bad bytes).  Same blocks, same ``FramingError``
        (whose ``blocks`` are then ``str``s or ``bytes`` alike)."""
        return self._feed(data, True)

    def _feed(self, data: bytes, text: bool) -> list[str] | list[bytes]:
        buf = self._take(data)
        if buf is None:
            return []
        if not self._expect_banner:
            fast = self._split_plain_text(buf) if text else None
            if fast is None:
                fast = self._split_plain(buf)
            if fast is not None:
                return fast
        return self._split(buf)

    def _take(self, data: bytes) -> bytes | None:
        """The bytes to split now, or None while no message can be complete."""
        if b"\r" in data:
            data = data.replace(b"\r", b"")
        if not data:
            return None
        if not self._parts:
            return data
        if not self._may_complete(data):
            self._parts.append(data)
            self._size += len(data)
            self._tail_nl = data.endswith(b"\n")
            self._check_size(self._size, [])
            return None
        self._parts.append(data)
        buf = b"".join(self._parts)
        self._parts = []
        return buf

    def _split(self, buf: bytes) -> list[bytes]:
        """The careful loop: banner, stray blank lines, old-style command output."""
        blocks: list[bytes] = []
        pos = 0
        if self._expect_banner:
            nl = buf.find(b"\n")
            if nl < 0:
                self._keep(buf, 0)
                return blocks
            first = buf[:nl]
            self._expect_banner = False
            if b": " not in first:
                self.banner = first.decode("utf-8", "replace")
                pos = nl + 1
        find = buf.find
        startswith = buf.startswith
        limit = self._max - 1  # a block and its first "\n" must fit in max
        while True:
            # Skip stray blank lines between messages.
            while startswith(b"\n", pos):
                pos += 1
            end = find(b"\n\n", pos)
            if end < 0:
                break
            if startswith(b"Response: Follows", pos) and find(_END_COMMAND, pos, end) < 0:
                # Old-style command output may hold blank lines: wait for its end marker.
                marker = find(_END_COMMAND, pos)
                if marker < 0:
                    break
                end = find(b"\n\n", marker)
                if end < 0:
                    break
            if end - pos > limit:
                self._check_size(end - pos + 1, blocks)
            blocks.append(buf[pos:end])
            pos = end + 2
        self._keep(buf, pos)
        self._check_size(self._size, blocks)
        return blocks

    def _split_plain(self, buf: bytes) -> list[bytes] | None:
        """The common case in C-level calls: ``split`` at every blank line.
        The blocks are those the loop in ``feed`` cuts when no block is empty
        or starts with a newline (stray blank lines), none is old-style
        command output and each is within the size limit; otherwise None,
        and the loop decides (and raises ``FramingError`` where it would)."""
        if b"Response: Follows" in buf:
            return None
        blocks = buf.split(b"\n\n")
        rest = blocks.pop()  # after the last blank line: the next message's start, or b""
        if rest.startswith(b"\n"):
            return None
        # The smallest block, bytewise, is empty or starts with a byte <= "\n"
        # if any does; a block and its first "\n" must fit in max.
        if blocks and (min(blocks)[:1] <= b"\n" or max(map(len, blocks)) >= self._max):
            return None
        self._keep(rest, 0)
        self._check_size(self._size, blocks)
        return blocks

    def _split_plain_text(self, buf: bytes) -> list[str] | None:
        """``_split_plain`` with one ``decode`` of every complete block:
        None when it would be None or when those bytes are not UTF-8."""
        if b"Response: Follows" in buf:
            return None
        cut = buf.rfind(b"\n\n")
        if cut <= 0 or buf[cut - 1] == 10:  # 10: "\n"
            return None  # no complete block, or stray blank lines: let the others decide
        try:
            text = buf[:cut].decode("utf-8")
        except UnicodeDecodeError:
            return None
        blocks = text.split("\n\n")
        # As in _split_plain; a block's bytes are its length in characters
        # when all are ASCII, and at most 4 times it in UTF-8 otherwise.  No
        # block is longer than all of them (``cut`` bytes): most reads are
        # shorter than the limit, and then no block's length is asked.
        if min(blocks)[:1] <= "\n":
            return None
        if cut >= self._max:
            longest = max(map(len, blocks))
            if longest >= self._max or (len(text) != cut and 4 * longest >= self._max):
                return None
        self._keep(buf, cut + 2)
        self._check_size(self._size, blocks)  # type: ignore[arg-type]
        return blocks

    def _may_complete(self, data: bytes) -> bool:
        """Could ``data`` end the pending message (or banner line)?"""
        if self._expect_banner or self._follows:
            return b"\n" in data
        return b"\n\n" in data or (self._tail_nl and data.startswith(b"\n"))

    def _keep(self, buf: bytes, pos: int) -> None:
        if pos < len(buf):
            rest = buf[pos:] if pos else buf
            self._parts = [rest]
            self._size = len(rest)
            self._tail_nl = rest.endswith(b"\n")
            self._follows = rest.startswith(b"Response: Follows")
        else:
            self._parts = []
            self._size = 0
            self._tail_nl = self._follows = False

    def _check_size(self, size: int, blocks: list[bytes] | list[str]) -> None:
        if size > self._max:
            self._parts = []
            self._size = 0
            self._tail_nl = self._follows = False
            raise FramingError(
                f"AMI message longer than {self._max} bytes without an end", blocks
            )

    def reset(self, expect_banner: bool = True) -> None:
        self._parts = []
        self._size = 0
        self._tail_nl = self._follows = False
        self._expect_banner = expect_banner
        self.banner = None

    @property
    def pending(self) -> int:
        return self._size
