"""How ``twistd callcenter`` ends with a non-zero exit status after a failed start.

twistd has no public way to set the process's exit status: it returns 0
whenever the reactor stops (Twisted 26's ``twistd.runApp`` only re-raises a
signal).  A start-up failure must still exit non-zero, so systemd's
``Restart=on-failure`` and scripts see it.  So: stop the reactor, let twistd
finish its own shutdown (pidfile, logs), and at interpreter exit replace the
status with ours.  This is the only place that does it.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any


def _exit_with(code: int) -> None:
    # atexit runs after twistd has cleaned up; sys.exit here would be ignored.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def exit_after_stop(reactor: Any, code: int) -> None:
    atexit.register(_exit_with, code)
    if reactor.running:
        reactor.callLater(0, reactor.stop)
