"""Helpers of the packaging tests: processes, a clean environment, and talking
to a running service (HTTP GETs, a WebSocket HELLO).  (Not named after
anything importable: tests/packaging/ is on sys.path.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.web.client import Agent, readBody

REPO = Path(__file__).resolve().parents[2]
# The other test folders' helpers (AMI peers, trace loading, private Redis)
# are imported as pytest imports them, from tests/.
if str(REPO / "tests") not in sys.path:
    sys.path.insert(1, str(REPO / "tests"))
# A PATH without node and npm (Debian's are in /usr/bin, which /bin links
# to); what runs here is started by absolute path.
NO_NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would point Python at the checkout."""
    # Under `make test`, the outer make's variables would reach the inner makes.
    inherited = {"PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"}
    env = {k: v for k, v in os.environ.items()
           if k not in inherited and not k.startswith(("CALLCENTER_", "DEMO_", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def run(argv: list[str], cwd: Path | str, timeout: float = 900, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, env=clean_env(**env), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{argv}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def _like_a_shell_job() -> None:
    # Its own process group (Ctrl-C goes to the group), with SIGINT as a
    # terminal's job has it: the test process may have it ignored, and an
    # ignored signal stays ignored in children (bash cannot even trap it).
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Process:
    """A child process with its output in a file, in its own process group."""

    def __init__(self, argv: list[str], cwd: Path | str, log: Path, env: dict[str, str]) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         preexec_fn=_like_a_shell_job)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, needle: str, seconds: float = 60) -> None:
        """Until the output holds ``needle`` (the reactor keeps running meanwhile)."""
        deadline = time.monotonic() + seconds
        while needle not in self.text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in the output:\n{self.text()[-4000:]}")
            await deferLater(reactor, 0.1, lambda: None)

    async def exited(self, seconds: float = 30) -> int:
        """Its exit status, waiting without blocking the reactor (the test's
        own connections to it must still be able to close)."""
        deadline = time.monotonic() + seconds
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {seconds} s:\n{self.text()[-3000:]}")
            await deferLater(reactor, 0.1, lambda: None)
        return self.proc.returncode

    def signal_group(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signum)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.signal_group(signum)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            return self.proc.wait(10)


def start(processes: list[Process], argv: list[str], cwd: Path | str, log: Path, **env: str) -> Process:
    p = Process(argv, cwd, log, clean_env(**env))
    processes.append(p)
    return p


def no_node_env(**extra: str) -> dict[str, str]:
    assert shutil.which("node", path=NO_NODE_PATH) is None
    assert shutil.which("npm", path=NO_NODE_PATH) is None
    return {"PATH": NO_NODE_PATH, **extra}
# Every file the page loads, with the content type it must be served with.
PAGE = [
    ("", "text/html"),
    ("live.js", "text/javascript"),  # the link to the server, shared with /agent
    ("app.js", "text/javascript"),
    ("app.css", "text/css"),
    ("favicon.svg", "image/svg+xml"),
    ("vendor/vue.global.prod.js", "text/javascript"),
    ("vendor/bootstrap.min.css", "text/css"),
]
# The agent's page (/agent) and the files it loads besides the dashboard's.
AGENT_PAGE = [
    ("agent", "text/html"),
    ("agent.js", "text/javascript"),
    ("agent.css", "text/css"),
]


async def get(url: str) -> tuple[int, str, bytes]:
    """(status, content type, body)."""
    response = await Agent(reactor).request(b"GET", url.encode())
    body = await readBody(response)
    ctype = (response.headers.getRawHeaders(b"content-type") or [b""])[0].decode()
    return response.code, ctype, body


class _Hello(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.sendMessage(b"HELLO")

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not self.factory.got.called:
            self.factory.got.callback([json.loads(x) for x in payload.decode().split("\n") if x])
        self.sendClose()


async def hello(port: int) -> list[dict[str, Any]]:
    """The objects of the HELLO answer on ws://127.0.0.1:port/callcenter."""
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/callcenter",
                                     origin=f"http://127.0.0.1:{port}")
    factory.protocol = _Hello
    factory.got = defer.Deferred()
    reactor.connectTCP("127.0.0.1", port, factory)
    return await factory.got.addTimeout(20, reactor)
