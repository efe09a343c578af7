"""`twistd callcenter` as a real process: start-up problems are one clear line,
and `make demo`'s command serves the page and a HELLO snapshot with agents."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from . import traces
from .replay_server import replay_pbx

ROOT = Path(__file__).resolve().parents[2]
TWISTD = [str(Path(sys.executable).with_name("twistd"))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("CALLCENTER_AMI_SECRET", None)
    log = open(tmp / "twistd.log", "wb")  # noqa: SIM115 - closed by the caller via the process
    return subprocess.Popen(
        [*TWISTD, "--nodaemon", "--pidfile=", "callcenter", "--report", str(tmp / "report.csv"),
         "--redis", f"redis://127.0.0.1:{free_port()}/0", "--listen",
         f"tcp:{free_port()}:interface=127.0.0.1", *args],
        cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_for(pred, seconds: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await deferLater(reactor, 0.1, lambda: None)


def test_unwritable_report_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    run = subprocess.run(
        [*TWISTD, "--nodaemon", "--pidfile=", "callcenter", "--ami-secret", "x",
         "--report", str(tmp_path / "file" / "report.csv")],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
        timeout=60,
    )
    assert run.returncode == 2
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert lines == [f"twistd callcenter: report file {tmp_path}/file/report.csv: cannot open for writing (Not a directory)"]


@pytest_twisted.ensureDeferred
async def test_wrong_secret_is_logged_once_and_retried_slowly(tmp_path: Path) -> None:
    factory = replay_pbx(traces.load("login"), secret="right")
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    proc = start(tmp_path, "--ami", f"tcp:host=127.0.0.1:port={port.getHost().port}", "--ami-secret", "wrong")
    try:
        log = tmp_path / "twistd.log"
        await wait_for(lambda: b"rejected" in log.read_bytes())
        await deferLater(reactor, 3, lambda: None)
        text = log.read_text()
        assert proc.poll() is None  # still serving the dashboard
        rejected = [line for line in text.splitlines() if "rejected" in line]
        assert len(rejected) == 1 and "Authentication failed" in rejected[0] and "callcenter" in rejected[0]
        assert "Traceback" not in text
        logins = [a for a in factory.actions if a.get("Action") == "Login"]
        assert len(logins) == 1  # no tight retry loop
    finally:
        stop(proc)
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_unreachable_ami_is_one_line_naming_it(tmp_path: Path) -> None:
    dead = free_port()
    proc = start(tmp_path, "--ami", f"tcp:host=127.0.0.1:port={dead}", "--ami-secret", "x")
    try:
        log = tmp_path / "twistd.log"
        await wait_for(lambda: f"127.0.0.1:{dead}".encode() in log.read_bytes())
        await deferLater(reactor, 4, lambda: None)  # several retries (1 s, 2 s, ...)
        text = log.read_text()
        assert proc.poll() is None
        naming = [line for line in text.splitlines() if f"127.0.0.1:{dead}" in line and "AMI" in line]
        assert len(naming) == 1, naming
        assert "Traceback" not in text
    finally:
        stop(proc)


class Hello(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.sendMessage(b"HELLO")

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not self.factory.got.called:
            self.factory.got.callback([json.loads(x) for x in payload.decode().split("\n") if x])
        self.sendClose()


async def hello(web: int) -> list[dict]:
    """One HELLO's answer: every object the server sends back."""
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{web}/callcenter", origin=f"http://127.0.0.1:{web}")
    factory.protocol = Hello
    factory.got = defer.Deferred()
    reactor.connectTCP("127.0.0.1", web, factory)
    return await factory.got.addTimeout(10, reactor)


@pytest_twisted.ensureDeferred
async def test_demo_command_serves_page_and_hello_with_agents(tmp_path: Path) -> None:
    web = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [*TWISTD, "--nodaemon", "--pidfile=", "callcenter", "--simulate", "--seed", "3",
         "--listen", f"tcp:{web}:interface=127.0.0.1", "--redis", f"redis://127.0.0.1:{free_port()}/0",
         "--report", str(tmp_path / "report.csv")],
        cwd=tmp_path, env=env, stdout=open(tmp_path / "twistd.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )
    try:
        await wait_for(lambda: b"dashboard at" in (tmp_path / "twistd.log").read_bytes())
        from twisted.web.client import Agent, readBody

        response = await Agent(reactor).request(b"GET", f"http://127.0.0.1:{web}/".encode())
        page = await readBody(response)
        assert response.code == 200 and b"<html" in page.lower()
        # The simulated agents log in over the first seconds: HELLO until some have
        # (a fixed wait was too short on a loaded machine).
        for _ in range(60):
            objects = await hello(web)
            agents = [o for o in objects if o["type"] == "AGENT"]
            if agents:
                break
            await deferLater(reactor, 0.5, lambda: None)
        assert [o["type"] for o in objects[:2]] == ["CONFIG", "STATS"]  # CONFIG first (docs/protocol.md)
        assert agents and all(o["status"] in ("LOGGEDIN", "AVAIL", "PAUSED", "INCALL") for o in agents)
        # The simulated phones' caller-id names, sent by the login (issue 15).
        assert all(o["name"] for o in agents), agents
        assert objects[0]["pause_reasons"] == ["Break", "Lunch", "Training", "Coaching"]
        assert "Traceback" not in (tmp_path / "twistd.log").read_text()
    finally:
        stop(proc)


@pytest_twisted.ensureDeferred
async def test_sighup_reopens_the_report_after_rotation(tmp_path: Path) -> None:
    proc = start(tmp_path, "--simulate", "--sim-calls-per-minute", "60")
    report = tmp_path / "report.csv"
    try:
        await wait_for(lambda: report.exists() and report.stat().st_size > 0)
        report.rename(tmp_path / "report.csv.1")  # logrotate's move...
        proc.send_signal(signal.SIGHUP)  # ...and its postrotate
        await wait_for(lambda: report.exists() and report.stat().st_size > 0)
        assert proc.poll() is None
        assert "reopened" in (tmp_path / "twistd.log").read_text()
    finally:
        stop(proc)


@pytest_twisted.ensureDeferred
async def test_sighup_rereads_the_agents_file_and_tells_the_dashboards(tmp_path: Path) -> None:
    from twisted.internet.endpoints import TCP4ClientEndpoint
    from web.support import WSClient, find, has

    agents = tmp_path / "agents.csv"
    agents.write_text("id,name,team\n")
    web = free_port()
    proc = start(tmp_path, "--simulate", "--seed", "3", "--agents", str(agents),
                 "--listen", f"tcp:{web}:interface=127.0.0.1")
    log = tmp_path / "twistd.log"
    try:
        await wait_for(lambda: b"dashboard at" in log.read_bytes())
        await deferLater(reactor, 3, lambda: None)  # simulated agents log in
        factory = WebSocketClientFactory(f"ws://127.0.0.1:{web}/callcenter", origin=f"http://127.0.0.1:{web}")
        factory.protocol = WSClient
        client = await TCP4ClientEndpoint(reactor, "127.0.0.1", web).connect(factory)
        await client.opened.addTimeout(10, reactor)
        agentid = next(o["agentid"] for o in await client.hello() if o["type"] == "AGENT")
        agents.write_text(f"{agentid},Renamed Agent,Night shift\n")
        proc.send_signal(signal.SIGHUP)
        frames = await client.until(has("AGENT", agentid=agentid, name="Renamed Agent"))
        assert find(frames[-1], "AGENT", agentid=agentid)["team"] == "Night shift"
        await wait_for(lambda: b"reloaded: 1 agents" in log.read_bytes())

        agents.write_text(f"{agentid},Renamed Agent\n{agentid},twice\n")  # refused whole
        proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: b"not reloaded, keeping the 1 agents loaded" in log.read_bytes())
        client.send("HELLO")
        hello = await client.until(has("CONFIG"))  # the HELLO answer
        assert find(hello[-1], "AGENT", agentid=agentid)["name"] == "Renamed Agent"
        assert proc.poll() is None and "Traceback" not in log.read_text()
        client.sendClose()
    finally:
        stop(proc)


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        run = subprocess.run(
            [*TWISTD, "--nodaemon", "--pidfile=", "callcenter", "--simulate",
             "--report", str(tmp_path / "report.csv"), "--redis", f"redis://127.0.0.1:{free_port()}/0",
             "--listen", f"tcp:{port}:interface=127.0.0.1"],
            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
            text=True, timeout=60,
        )
    finally:
        busy.close()
    assert run.returncode == 1
    out = run.stdout + run.stderr
    assert "Traceback" not in out
    fatal = [line for line in out.splitlines() if "cannot start" in line]
    assert len(fatal) == 1 and f"--listen 'tcp:{port}:interface=127.0.0.1'" in fatal[0]
