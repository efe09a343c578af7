"""Issue 13's acceptance, end to end: the real service tree (``CallcenterService``)
with its AMI client pointed at a port where no PBX listens yet, a throw-away
redis-server, and the page in headless Chromium.

AMI down at start → HEALTH down with the reason, /readyz 503, red banner,
no "Live"; the PBX comes up → "syncing" until the reconcile's answer →
reconciled → HEALTH up, /readyz 200, banner
gone, commands enabled; Redis stopped → the quiet warning, figures still
update; Redis back → warning gone; the PBX goes away → banner again with the
time it went, commands disabled, /readyz 503.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory
from store.conftest import RedisServer, free_port
from twisted.internet import reactor, threads
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString

from callcenter.ami.message import Message
from callcenter.service import CallcenterService, Options

from .support import ARTIFACTS, TIMEOUT, PeerState, WSClient, find
from .test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, on_reactor, row

Q = "q-callcenter"


def queue_member(name: str) -> Message:
    """QueueStatus's QueueMember item as Asterisk 22 sends it (ami-traces REFERENCE.md)."""
    iface = f"Local/{name}@agent-connect"
    return Message.of(
        ("Event", "QueueMember"), ("Queue", Q), ("Name", name), ("Location", iface),
        ("StateInterface", iface), ("Membership", "dynamic"), ("Penalty", "0"), ("CallsTaken", "0"),
        ("LastCall", "0"), ("LastPause", "0"), ("LoginTime", str(int(time.time()) - 60)), ("InCall", "0"),
        ("Status", "1"), ("Paused", "0"), ("PausedReason", ""), ("Wrapuptime", "0"))


def probe(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - loopback test URL
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def hhmm(t: float) -> str:
    return time.strftime("%H:%M", time.localtime(t))


class HeldAnswer:
    """The PBX's QueueStatus answer, held until ``release`` (once): the time
    between login and reconcile, made long enough to look at."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.waiting: list = []
        self.released = False

    def __call__(self, conn, msg):
        if self.released:
            return self.answer(conn, msg)
        self.waiting.append((conn, msg))
        return None

    def release(self) -> None:
        from support.fake_asterisk import retag

        self.released = True
        for conn, msg in self.waiting:
            if not conn.closed:
                conn.send(retag(self.answer(conn, msg), msg.action_id or ""))
        self.waiting = []


def drive(url: str, svc: CallcenterService, peer: PeerState, pbx_port: int, redis: RedisServer,
          held: HeldAnswer) -> dict:
    from playwright.sync_api import expect, sync_playwright

    os.makedirs(ARTIFACTS, exist_ok=True)
    out: dict = {"errors": []}
    listening: list = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
            page.on("pageerror", lambda e: out["errors"].append(str(e)))

            # 1. The PBX is not there.
            page.goto(url)
            banner = page.locator("#pbx-banner")
            expect(banner).to_be_visible()
            since = svc.health.pbx.since
            expect(banner).to_contain_text(f"No connection to the PBX since {hhmm(since)} — figures are frozen")
            expect(page.locator("#conn")).not_to_contain_text("Live")
            expect(page.locator("#conn")).to_have_attribute("data-pbx", "down")
            expect(page.locator(".dash")).to_have_class("dash stale")
            out["readyz_down"] = probe(url + "readyz")
            page.screenshot(path=os.path.join(ARTIFACTS, "health-pbx-down.png"), full_page=True)

            # 2. The PBX comes up: logged in but not reconciled is "syncing", not zeros;
            # then the reconcile's answer arrives: live.
            listening.append(on_reactor(
                lambda: serverFromString(reactor, f"tcp:{pbx_port}:interface=127.0.0.1").listen(peer.pbx)))
            expect(page.locator("#pbx-syncing")).to_be_visible(timeout=40_000)
            expect(page.locator("#conn")).to_contain_text("Syncing")
            expect(page.locator('[data-kpi="calls_received"] .kpi-value')).to_have_text("syncing")
            expect(banner).to_have_count(0)
            out["readyz_syncing"] = probe(url + "readyz")
            on_reactor(held.release)
            expect(page.locator("#conn")).to_contain_text("Live")
            expect(banner).to_have_count(0)
            expect(page.locator(f'{row("agent", "1001")} [data-action="pause"]')).to_be_enabled()
            # No call yet: a service level or an average of nothing is "—", not 0.0% / 0:00.
            expect(page.locator('[data-kpi="sla"] .kpi-value')).to_have_text("—")
            expect(page.locator('[data-kpi="average_queue_time"] .kpi-value')).to_have_text("—")
            expect(page.locator('[data-kpi="calls_received"] .kpi-value')).to_have_text("0")
            out["readyz_up"] = probe(url + "readyz")

            # 3. Redis stops: a quiet warning; the figures still follow the PBX.
            redis.stop()
            store = page.locator("#store-banner")
            expect(store).to_contain_text("state not being saved")
            uid = peer.new_uid()
            on_reactor(peer.send, peer.join(uid, "98427456"))
            expect(page.locator('[data-kpi="calls_waiting"] .kpi-value')).to_have_text("1")
            expect(page.locator(row("call", uid))).to_be_visible()
            expect(page.locator("#conn")).to_contain_text("Live")  # Redis is not the PBX link
            page.screenshot(path=os.path.join(ARTIFACTS, "health-redis-down.png"), full_page=True)

            # 4. Redis is back: the warning goes.
            redis.start()
            expect(store).to_have_count(0, timeout=40_000)

            # 5. The PBX goes away: frozen again, commands off.
            on_reactor(lambda: listening[0].stopListening())
            on_reactor(peer.pbx.drop_all)
            expect(banner).to_be_visible()
            gone = svc.health.pbx.since
            expect(banner).to_contain_text(f"No connection to the PBX since {hhmm(gone)}")
            expect(page.locator(f'{row("agent", "1001")} [data-action="pause"]')).to_be_disabled()
            expect(page.locator(f'{row("agent", "1001")} [data-action="avail"]')).to_be_disabled()
            expect(page.locator("#conn")).not_to_contain_text("Live")
            out["readyz_lost"] = probe(url + "readyz")
            out["healthz"] = probe(url + "healthz")
            page.screenshot(path=os.path.join(ARTIFACTS, "health-pbx-lost.png"), full_page=True)
        finally:
            browser.close()
    return out


@pytest_twisted.ensureDeferred
async def test_health_end_to_end(tmp_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs chromium", pytrace=False)
    redis = RedisServer(tmp_path)
    redis.start()
    peer = PeerState(reactor)
    peer.pbx.answer_list("CoreShowChannels", "CoreShowChannelsComplete", list, "Channels will follow")
    peer.pbx.answer_list("QueueStatus", "QueueStatusComplete", lambda: [queue_member("1001")],
                         "Queue status will follow")
    held = HeldAnswer(peer.pbx.answers["QueueStatus"])
    peer.pbx.answers["QueueStatus"] = held
    pbx_port = free_port()  # nothing listens here until step 2
    opts = Options(environ={})
    opts.parseOptions([
        "--ami", f"tcp:host=127.0.0.1:port={pbx_port}", "--ami-secret", "secret",
        "--redis", redis.url, "--report", str(tmp_path / "report.csv"),
        "--listen", "tcp:0:interface=127.0.0.1",
    ])
    svc = CallcenterService(opts, reactor)
    svc.startService()
    ws = None
    try:
        await svc.ready
        url = f"http://127.0.0.1:{svc.web.watcher.port.getHost().port}/"
        factory = WebSocketClientFactory(url.replace("http", "ws") + "callcenter", origin=url.rstrip("/"),
                                         reactor=reactor)
        factory.protocol = WSClient
        ws = await TCP4ClientEndpoint(reactor, "127.0.0.1", svc.web.watcher.port.getHost().port).connect(factory)
        await ws.opened
        for _ in range(int(TIMEOUT / 0.05)):  # the first attempt fails at once
            if svc.health.pbx.error == "connection refused":
                break
            await _sleep(0.05)
        hello = await ws.hello()
        assert [o["type"] for o in hello[:2]] == ["CONFIG", "STATS"]
        health = find(hello, "HEALTH")
        assert health is not None and health == hello[-1]
        assert health["pbx"] == {"up": False, "synced": False, "since": int(svc.health.pbx.since),
                                 "error": "connection refused"}
        assert health["store"]["up"] is True

        out = await threads.deferToThread(drive, url, svc, peer, pbx_port, redis, held)

        assert out["errors"] == []
        assert out["readyz_down"] == (503, {"ready": False, "not_ready": ["pbx"],
                                            "checks": {"pbx": "connection refused", "web": "ok"}})
        assert out["readyz_syncing"] == (503, {"ready": False, "not_ready": ["pbx"], "checks": {
            "pbx": "logged in, reconciling with the PBX", "web": "ok"}})
        assert out["readyz_up"] == (200, {"ready": True, "not_ready": [], "checks": {"pbx": "ok", "web": "ok"}})
        code, body = out["readyz_lost"]
        assert code == 503 and body["checks"]["pbx"] in ("connection lost", "connection refused")
        assert out["healthz"] == (200, {"alive": True})

        # Every change was pushed to the dashboard that said HELLO, in order.
        pushed = []
        while ws.frames.pending:
            pushed += [o for o in await ws.frame() if o["type"] == "HEALTH"]
        states = [(o["pbx"]["up"], o["pbx"]["synced"], o["store"]["up"]) for o in pushed]
        for step in [(True, False, True), (True, True, True), (True, True, False), (True, True, True),
                     (False, False, True)]:
            assert step in states, states
            states = states[states.index(step):]
    finally:
        if ws is not None and ws.transport is not None:
            ws.transport.abortConnection()
        await svc.stopService()
        redis.stop()


def _sleep(seconds: float):
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)
