"""systemd's notify protocol: READY=1, STATUS= lines and WATCHDOG=1 pings.

The unit is ``Type=notify`` with ``WatchdogSec=`` (ansible/roles/callcenter/
files/callcenter.service).  ``sd_notify`` is a datagram of ``KEY=value``
lines to the Unix socket named by ``$NOTIFY_SOCKET`` (a path, or an abstract
name written with a leading ``@``); a few lines here rather than a library:
``sdnotify`` (last release 2017) and ``systemd-python`` (a C extension that
needs libsystemd's headers to build) are more to carry than this.

``NotifyService`` is the last child of the service tree, so it starts once
the web port listens; it then says READY=1 when the PBX link is first
reconciled, or after ``ready_timeout`` seconds at most (logged, with why),
so a PBX that is down does not keep the unit "activating" until systemd
kills it.  Without ``$NOTIFY_SOCKET`` (not under systemd) it does nothing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from twisted.application import service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from callcenter.health import Health

log = Logger()

READY_TIMEOUT = 60.0  # seconds after the web port opened: READY=1 even without the PBX


class Notifier:
    """Sends notify datagrams to ``$NOTIFY_SOCKET``; never blocks, never raises."""

    def __init__(self, address: str | None) -> None:
        self.address: str | bytes | None = None
        self._sock: socket.socket | None = None
        self._failed_logged = False
        if address:
            # "@name" is the abstract socket "\0name" (sd_notify(3)).
            self.address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> bool:
        if self._sock is None or self.address is None:
            return False
        # One line per field: a newline inside a STATUS= would start a new field.
        data = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8", "replace")
        try:
            self._sock.sendto(data, self.address)
        except OSError as e:
            if not self._failed_logged:
                log.warn("systemd notify socket {addr!r} refused a message: {err}",
                         addr=self.address, err=e)
                self._failed_logged = True
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of ``$WATCHDOG_USEC``, or None
    when systemd asks for none (or asks another process: ``$WATCHDOG_PID``)."""
    usec = environ.get("WATCHDOG_USEC", "")
    wpid = environ.get("WATCHDOG_PID", "")
    if wpid and wpid.strip() != str(pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


def link_status(health: Health) -> str:
    """The STATUS= line: what ``systemctl status`` shows under the unit."""
    p, s = health.pbx, health.store
    at = time.strftime("%H:%M:%S", time.localtime(p.since))
    if p.up and p.synced:
        pbx = f"PBX link up since {at}"
    elif p.up:
        pbx = "PBX link up, reconciling"
    else:
        pbx = f"PBX link down since {at} ({p.error})"
    store = "Redis up" if s.up else f"Redis down ({s.error}): state not being saved"
    return f"{pbx}; {store}"


class NotifyService(service.Service):
    name = "systemd"

    def __init__(
        self,
        reactor: Any,
        health: Health,
        *,
        ready_timeout: float = READY_TIMEOUT,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.reactor = reactor
        self.health = health
        self.ready_timeout = ready_timeout
        self.notifier = Notifier(environ.get("NOTIFY_SOCKET"))
        self.watchdog = watchdog_interval(environ, os.getpid())
        self.ready_sent = False
        self._timer: Any = None
        self._loop: LoopingCall | None = None
        self._unsubscribe: Any = None
        self._last_status = ""

    def startService(self) -> None:
        super().startService()
        if not self.notifier.enabled:
            return
        if self.watchdog:
            self._loop = LoopingCall(self.notifier.notify, "WATCHDOG=1")
            self._loop.clock = self.reactor
            self._loop.start(self.watchdog, now=True)
        self._unsubscribe = self.health.subscribe(self._changed)
        self._changed(self.health)
        if not self.ready_sent:
            self._timer = self.reactor.callLater(self.ready_timeout, self._timed_out)

    def _changed(self, health: Health) -> None:
        status = "STATUS=" + link_status(health)
        lines = [status] if status != self._last_status else []
        self._last_status = status
        if health.pbx_ready and not self.ready_sent:
            self.ready_sent = True
            lines.append("READY=1")
            log.info("told systemd READY=1: the PBX link is reconciled")
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
        if lines:
            self.notifier.notify(*lines)

    def _timed_out(self) -> None:
        self._timer = None
        if self.ready_sent:
            return
        self.ready_sent = True
        log.warn(
            "told systemd READY=1 after {t:g} s without a reconciled PBX link ({why}); "
            "the dashboard serves and shows the link as down (--ready-timeout)",
            t=self.ready_timeout, why=self.health.pbx_problem())
        self.notifier.notify("READY=1", "STATUS=" + link_status(self.health))

    def stopService(self) -> None:
        super().stopService()
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.notifier.close()
