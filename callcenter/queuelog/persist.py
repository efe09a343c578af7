"""The catch-up's cursor in Redis, written inside each event's transaction.

A part of the store's transactions (``RedisStore.add_part``): each ``Changes``
that carries a cursor delta (``Changes.cursor``, set by the catch-up while the
event is applied) adds O(1) commands to that event's MULTI/EXEC, so Redis
never holds an event's state without the cursor that says it was applied,
or the reverse:

- ``P qlog:cursor``: JSON ``{"v", "offset", "fp", "mark"}`` (file position,
  first-line fingerprint, whole second of the last applied event);
- ``P qlog:applied``: a hash, identity → second, of the events applied in
  the last seconds (kept within a few seconds of the mark; older ones are
  deleted as the mark moves, and ignored at load).
"""

from __future__ import annotations

from typing import Any

from callcenter.core.changes import Changes

Command = list[bytes]


class CursorDelta:
    """What one event changed in the cursor."""

    __slots__ = ("state", "added", "dropped")

    def __init__(self, state: bytes, added: list[tuple[str, int]], dropped: list[str]) -> None:
        self.state = state
        self.added = added
        self.dropped = dropped


class CursorPart:
    def __init__(self, cursor: Any, prefix: str) -> None:
        self.cursor = cursor
        self.state_key = prefix.encode() + b"qlog:cursor"
        self.applied_key = prefix.encode() + b"qlog:applied"

    def attach(self, store: Any) -> None:
        pass

    def on_changes(self, ch: Changes) -> list[Command]:
        delta = ch.cursor
        if not isinstance(delta, CursorDelta):
            return []
        cmds: list[Command] = [[b"SET", self.state_key, delta.state]]
        if delta.dropped:
            cmds.append([b"HDEL", self.applied_key, *(k.encode() for k in delta.dropped)])
        if delta.added:
            pairs: Command = []
            for key, second in delta.added:
                pairs += (key.encode(), str(second).encode())
            cmds.append([b"HSET", self.applied_key, *pairs])
        return cmds

    def full_commands(self) -> list[Command]:
        cmds: list[Command] = [[b"DEL", self.applied_key], [b"SET", self.state_key, self.cursor.state_record()]]
        if self.cursor.keys:
            pairs: Command = []
            for key, second in self.cursor.keys.items():
                pairs += (key.encode(), str(second).encode())
            cmds.append([b"HSET", self.applied_key, *pairs])
        return cmds

    async def load(self, proto: Any) -> None:
        state = await proto.execute_command(b"GET", self.state_key)
        applied = await proto.execute_command(b"HGETALL", self.applied_key)
        pairs = applied if isinstance(applied, list) else []
        self.cursor.restore(state, list(zip(pairs[::2], pairs[1::2], strict=False)))

    def restored(self) -> None:
        pass


__all__ = ["CursorDelta", "CursorPart"]
