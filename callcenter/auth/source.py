"""The users file as the service holds it: loaded at start, reloaded on SIGHUP
or when the file changes, and telling listeners so open sessions of removed
or changed users can be closed.

A reload that fails (the file half-edited by hand, a bad line) keeps the users
already loaded and logs one line: check, then change.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from callcenter.auth import users as users_mod
from callcenter.auth.users import Users, UsersFileError

log = Logger(namespace="callcenter.auth")

WATCH_INTERVAL = 2.0  # seconds between looks at the users file's mtime/size/inode


class UsersSource:
    def __init__(self, path: str, clock: IReactorTime, watch_interval: float = WATCH_INTERVAL) -> None:
        self.path = path
        self.clock = clock
        self.watch_interval = watch_interval
        self.users: Users = users_mod.load(path)  # UsersFileError at start: one line, no start
        self._stamp = self._file_stamp()
        self._listeners: list[Callable[[Users], None]] = []
        self._watch: LoopingCall | None = None

    def listen(self, fn: Callable[[Users], None]) -> None:
        self._listeners.append(fn)

    def start(self) -> None:
        if self._watch is None and self.watch_interval > 0:
            self._watch = LoopingCall(self._look)
            self._watch.clock = self.clock
            self._watch.start(self.watch_interval, now=False)

    def stop(self) -> None:
        if self._watch is not None and self._watch.running:
            self._watch.stop()
        self._watch = None

    def _file_stamp(self) -> Any:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _look(self) -> None:
        stamp = self._file_stamp()
        if stamp is not None and stamp != self._stamp:
            self.reload()

    def reload(self) -> bool:
        self._stamp = self._file_stamp()
        try:
            new = users_mod.load(self.path)
        except UsersFileError as e:
            log.error("users file not reloaded, keeping the {n} users loaded: {err}",
                      n=len(self.users), err=e)
            return False
        self.users = new
        log.info("users file {path} reloaded: {n} users", path=self.path, n=len(new))
        for fn in list(self._listeners):
            try:
                fn(new)
            except Exception:
                log.failure("users reload listener failed")
        return True
