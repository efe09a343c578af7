"""Failed-login throttle: per user name and per client address, in a bounded table.

After ``limit`` failures within ``window`` seconds (counted from the first
of them) a key is locked until the window has passed: every login for it is
refused *before* the password is checked, so even the right password does
not get in and a guesser gains nothing from the lock-out period.  A
successful login clears the user's count (not the address's: one valid
account must not reset an address that guesses others).  The table holds at
most ``size`` keys; past that the least recently failed is forgotten, so a
flood of made-up names costs bounded memory.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from twisted.logger import Logger

log = Logger(namespace="callcenter.auth")

USER_LIMIT = 5  # failures per user name per window
ADDRESS_LIMIT = 20  # per address: an office behind one NAT address has many users
WINDOW = 300.0  # seconds
TABLE_SIZE = 10_000  # keys remembered


class LoginThrottle:
    def __init__(self, clock: Any, *, user_limit: int = USER_LIMIT, address_limit: int = ADDRESS_LIMIT,
                 window: float = WINDOW, size: int = TABLE_SIZE) -> None:
        self.clock = clock
        self.user_limit = user_limit
        self.address_limit = address_limit
        self.window = window
        self.size = size
        self._table: OrderedDict[tuple[str, str], list[float]] = OrderedDict()  # key → [start, failures]

    def __len__(self) -> int:
        return len(self._table)

    def _entry(self, key: tuple[str, str]) -> list[float] | None:
        entry = self._table.get(key)
        if entry is not None and self.clock.seconds() - entry[0] >= self.window:
            del self._table[key]
            return None
        return entry

    def retry_after(self, user: str, address: str) -> float:
        """0 if a login may be tried now, else seconds until it may."""
        now = self.clock.seconds()
        wait = 0.0
        for key, limit in ((("user", user), self.user_limit), (("addr", address), self.address_limit)):
            entry = self._entry(key)
            if entry is not None and entry[1] >= limit:
                wait = max(wait, entry[0] + self.window - now)
        return wait

    def failed(self, user: str, address: str) -> None:
        now = self.clock.seconds()
        for key, limit in ((("user", user), self.user_limit), (("addr", address), self.address_limit)):
            entry = self._entry(key)
            if entry is None:
                entry = self._table[key] = [now, 0]
            entry[1] += 1
            self._table.move_to_end(key)
            if entry[1] == limit:
                log.warn("logins locked for {what} {who} for {s:g} s after {n} failures",
                         what=key[0], who=key[1], s=self.window, n=limit)
        while len(self._table) > self.size:
            self._table.popitem(last=False)

    def succeeded(self, user: str) -> None:
        self._table.pop(("user", user), None)
