"""A broken install without the page's files still does its job: it follows a
replayed PBX, counts, writes the report and answers on the WebSocket; it logs
one warning and `/` answers 503."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytest_twisted
from core import traces
from core.replay_server import replay_pbx
from pkgsupport import free_port, get, hello, no_node_env, site_packages, start
from twisted.internet import reactor
from twisted.internet.task import deferLater

TRACE = "answered"


@pytest.fixture
def without_assets(installed: Path):
    static = site_packages(installed) / "callcenter" / "web" / "static"
    hidden = static.with_name("static.removed")
    static.rename(hidden)
    try:
        yield installed
    finally:
        hidden.rename(static)  # the session's other tests use this install too


async def _stats_once(port: int, want: tuple[int, int, int], seconds: float = 60) -> dict:
    """HELLO until the STATS' (received, answered, abandoned) are ``want`` (the
    replay has played out: a call is received before it is answered, so waiting
    for the received count alone raced the last answer), or the time is up."""
    for _ in range(int(seconds * 2)):
        stats = next(o for o in await hello(port) if o.get("type") == "STATS")  # CONFIG opens the answer
        if (stats["calls_received"], stats["calls_answered"], stats["calls_abandoned"]) == want:
            return stats
        await deferLater(reactor, 0.5, lambda: None)
    return stats


@pytest_twisted.ensureDeferred
async def test_service_runs_without_its_page(without_assets, redis, processes, tmp_path):
    if not traces.TRACES.is_dir():
        pytest.skip(f"no recorded traces at {traces.TRACES}")
    trace = traces.load(TRACE)
    pbx = replay_pbx(trace, secret="s3cret-for-replay")
    ami = reactor.listenTCP(0, pbx, interface="127.0.0.1")
    web = free_port()
    report = tmp_path / "report.csv"
    try:
        service = start(
            processes,
            [str(without_assets / "bin" / "twistd"), "-n", "--pidfile=", "callcenter",
             "--ami", f"tcp:host=127.0.0.1:port={ami.getHost().port}",
             "--listen", f"tcp:{web}:interface=127.0.0.1", "--redis", redis.url,
             "--report", str(report), "--timezone", "UTC"],
            cwd="/", log=tmp_path / "twistd.log",
            **no_node_env(CALLCENTER_AMI_SECRET="s3cret-for-replay"),
        )
        await service.wait_for("dashboard at")
        counts = trace.expected["driver_counts"]
        want = (counts["offered"], counts["answered"], counts["abandoned"])
        stats = await _stats_once(web, want)
        # Asterisk's own account of the recording (expected.json).
        assert (stats["calls_received"], stats["calls_answered"], stats["calls_abandoned"]) == (
            counts["offered"], counts["answered"], counts["abandoned"])
        assert pbx.logins == 1  # one session: the recording was played once

        code, ctype, body = await get(f"http://127.0.0.1:{web}/")
        assert code == 503 and ctype.startswith("text/html")
        assert body.count(b"<p>") == 1 and b"service itself is running" in body
        for path in ("app.js", "vendor/vue.global.prod.js", "index.html"):
            assert (await get(f"http://127.0.0.1:{web}/{path}"))[0] == 404, path
        code, _, config = await get(f"http://127.0.0.1:{web}/config.json")
        assert code == 200 and json.loads(config)["sla"] == 10

        # The report: one QUEUED line per answered caller, with Asterisk's hold time.
        answered = [c for c in trace.expected["callers"] if c.get("joined") and c["outcome"] == "answered"]
        for _ in range(60):
            rows = [line.split(";") for line in report.read_text().splitlines()] if report.exists() else []
            queued = sorted(int(r[4]) for r in rows if r[1] == "CALL" and r[3] == "QUEUED")
            if len(queued) >= len(answered):
                break
            await deferLater(reactor, 0.5, lambda: None)
        assert queued == sorted(c["holdtime_s"] for c in answered)

        log = service.text()
        warnings = [line for line in log.splitlines() if "dashboard page missing" in line]
        assert len(warnings) == 1 and "answers 503" in warnings[0], log[-3000:]
        assert "Traceback" not in log and "cannot start" not in log
    finally:
        await ami.stopListening()
