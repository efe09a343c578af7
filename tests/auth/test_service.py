"""`twistd callcenter` with logins, as a real process: refuses to serve the page
off loopback without users (one line); SIGHUP rereads the users file and
closes the dashboards of a removed user."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory
from core.test_service_process import stop, wait_for
from store.conftest import free_port
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers
from web.support import WSClient

from callcenter.web.access import CLOSE_SESSION_ENDED, COOKIE

from .support import PASSWORD, user_line, write_users

ROOT = Path(__file__).resolve().parents[2]
TWISTD = str(Path(sys.executable).with_name("twistd"))


def twistd(tmp: Path, *args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [TWISTD, "--nodaemon", "--pidfile=", "callcenter", "--simulate", "--report", str(tmp / "report.csv"), *args],
        cwd=tmp, env=env, stdout=open(tmp / "twistd.log", "wb"), stderr=subprocess.STDOUT, **kw,  # noqa: SIM115
    )


@pytest_twisted.ensureDeferred
async def test_no_users_off_loopback_is_one_line_and_no_start(tmp_path, redis_server):
    proc = twistd(tmp_path, "--listen", f"tcp:{free_port()}", "--public-url", "https://cc.example.com",
                  "--redis", redis_server.url)
    try:
        await wait_for(lambda: proc.poll() is not None)
        text = (tmp_path / "twistd.log").read_text()
        assert proc.returncode == 2
        assert [line for line in text.splitlines() if line.strip()] == [
            "twistd callcenter: no --users: refusing to serve the dashboard on the non-loopback "
            f"--listen {proc.args[proc.args.index('--listen') + 1]!r} without logins (see docs/security.md)"]
        assert "Traceback" not in text
    finally:
        stop(proc)


@pytest_twisted.ensureDeferred
async def test_sighup_rereads_users_and_closes_a_removed_users_dashboard(tmp_path, redis_server):
    users = str(tmp_path / "users")
    write_users(users, user_line("sue", "supervisor"), user_line("root", "admin"))
    web = free_port()
    proc = twistd(tmp_path, "--listen", f"tcp:{web}:interface=127.0.0.1", "--users", users,
                  "--users-watch", "0", "--redis", redis_server.url, "--audit", str(tmp_path / "audit.log"))
    try:
        await wait_for(lambda: b"dashboard at" in (tmp_path / "twistd.log").read_bytes())
        origin = f"http://127.0.0.1:{web}"
        headers = Headers({b"Origin": [origin.encode()], b"Content-Type": [b"application/json"]})
        body = FileBodyProducer(BytesIO(json.dumps({"user": "sue", "password": PASSWORD}).encode()))
        response = await Agent(reactor).request(b"POST", f"{origin}/login".encode(), headers, body)
        await readBody(response)
        assert response.code == 200
        cookie = response.headers.getRawHeaders(b"set-cookie")[0].decode().split(";")[0]
        factory = WebSocketClientFactory(f"ws://127.0.0.1:{web}/callcenter", origin=origin,
                                         headers={"Cookie": cookie}, reactor=reactor)
        factory.protocol = WSClient
        client = await TCP4ClientEndpoint(reactor, "127.0.0.1", web).connect(factory)
        await client.opened.addTimeout(10, reactor)
        assert (await client.hello())[1]["type"] == "STATS"  # after CONFIG
        assert cookie.startswith(COOKIE + "=")

        write_users(users, user_line("root", "admin"))
        proc.send_signal(signal.SIGHUP)
        code, _reason = await client.closed.addTimeout(20, reactor)
        assert code == CLOSE_SESSION_ENDED
        text = (tmp_path / "twistd.log").read_text()
        assert "users file" in text and "reloaded: 1 users" in text
        assert "Traceback" not in text
    finally:
        stop(proc)
