"""Synthetic PBX traffic with many report lines: one agent paused and unpaused.

The agent logs in as in the recorded ``pause-during-call`` trace (Asterisk 22's
own events); after it, its recorded ``QueueMemberPause`` is repeated with
``Paused`` alternating and the Timestamp one second further each time.  Every
toggle ends a status, so every event is one report line.
"""

from __future__ import annotations

import re

from store.support import parse_block, trace_blocks

from callcenter.ami.message import Message

_TS = re.compile(rb"Timestamp: ([0-9.]+)")
_PAUSED = re.compile(rb"\r\nPaused: [01]\r\n")


def toggle_blocks(n: int, start: float | None = None) -> list[tuple[float, bytes]]:
    """(time, wire bytes): the login, then ``n`` pause/unpause toggles a second apart."""
    blocks = trace_blocks("pause-during-call")
    first = next(i for i, (_, b) in enumerate(blocks) if b.startswith(b"Event: QueueMemberPause"))
    login = blocks[:first]
    t0, pause = blocks[first]
    shift = 0.0 if start is None else start - login[0][0]
    out = [(t + shift, _at(b, t + shift)) for t, b in login]
    for i in range(n):
        t = t0 + shift + 1 + i
        block = _PAUSED.sub(b"\r\nPaused: %d\r\n" % ((i + 1) % 2), pause)
        out.append((t, _at(block, t)))
    return out


def _at(block: bytes, t: float) -> bytes:
    return _TS.sub(b"Timestamp: %.6f" % t, block)


def messages(blocks: list[tuple[float, bytes]]) -> list[tuple[float, Message]]:
    return [(t, parse_block(b)) for t, b in blocks]
