"""The dashboard's wall mode, queue filter, layouts and issue 15's agent and
caller details, in headless Chromium (one browser for the module).

Three servers: a crafted one (tests.web.conftest.FakeCenter feeding exact
objects, also as an old server that sends none of issue 15's keys), the real
service on the simulated PBX with 200 agents and 10 queues (layout at the
three screen sizes), and the real service on the scripted fake PBX
(a pause set during a call, pending until hang-up).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, threads
from twisted.internet.endpoints import TCP4ClientEndpoint

from callcenter.ami.client import AMIClient
from callcenter.center import Callcenter
from callcenter.simulator import start_simulator
from callcenter.simulator.clock import FastClock, run_for
from callcenter.simulator.traffic import Behaviour
from callcenter.web import make_site

from .conftest import FakeCenter
from .support import ARTIFACTS, STATIC_DIR, listen
from .test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, on_reactor

WALL = {"width": 1920, "height": 1080}
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
SIM_QUEUES = ("q-sales", "q-support", "q-billing", "q-tech", "q-returns",
              "q-vip", "q-orders", "q-claims", "q-info", "q-partners")
SIM_AGENTS = 200

# In the page: elements whose box leaves the window, and boxes whose text
# overflows them (scrollWidth > clientWidth) among tiles, cells and labels.
OUTSIDE_JS = """sel => [...document.querySelectorAll(sel)].filter(e => {
  const r = e.getBoundingClientRect();
  return r.left < 0 || r.top < 0 || r.right > innerWidth || r.bottom > innerHeight;
}).map(e => e.dataset.agent || e.dataset.queue || e.className)"""
OVERFLOW_JS = """() => [...document.querySelectorAll(
  '.kpi, .kpi-label, .kpi-value, .kpi-sub, td, th, .table-responsive, .topbar, ' +
  '.wtile, .wtile-label, .wtile-value, .qtile, .qtile-name, .qtile-figs, ' +
  '.atile, .atile-top, .atile-bot, .atile-name, .atile-state')]
  .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth)
  .map(e => `${e.className}: ${e.textContent.slice(0, 40)} (${e.scrollWidth} > ${e.clientWidth})`)"""
HSCROLL_JS = "() => document.documentElement.scrollWidth > innerWidth"


# -- the crafted server ----------------------------------------------------------

class CraftedCenter(FakeCenter):
    """Exact objects for the page: issue 15's keys, or (``legacy``) none of them."""

    def __init__(self, now: float, legacy: bool = False) -> None:
        super().__init__()
        self.now = now
        self.legacy = legacy

    def queue_stats(self) -> dict[str, dict[str, Any]]:
        return {
            "q-sales": {"calls_received": 10, "calls_answered": 8, "calls_abandoned": 2,
                        "calls_waiting": 2, "longest_wait": 40, "sla": 75.0, "average_queue_time": 10,
                        "average_handle_time": 100, "average_abandoned_time": 20,
                        "sla_with_abandoned": 70.0, "agents_online": 3, "calls_online": 3,
                        "connections_online": 1, "agents_available": 0, "agents_loggedin": 3},
            "q-support": {"calls_received": 4, "calls_answered": 2, "calls_abandoned": 2,
                          "calls_waiting": 1, "longest_wait": 15, "sla": 50.0, "average_queue_time": 40,
                          "average_handle_time": 60, "average_abandoned_time": 30,
                          "sla_with_abandoned": 50.0, "agents_online": 2, "calls_online": 2,
                          "connections_online": 1, "agents_available": 0, "agents_loggedin": 2},
            "q-billing": {"calls_received": 30, "calls_answered": 30, "calls_abandoned": 0,
                          "calls_waiting": 0, "longest_wait": 0, "sla": 100.0, "average_queue_time": 2,
                          "average_handle_time": 50, "average_abandoned_time": 0,
                          "sla_with_abandoned": 100.0, "agents_online": 3, "calls_online": 0,
                          "connections_online": 0, "agents_available": 2, "agents_loggedin": 3},
        }

    def stats(self) -> dict[str, Any]:
        qs = self.queue_stats()
        if self.legacy:
            for q in qs.values():
                del q["agents_available"], q["agents_loggedin"]
        total = {k: sum(q[k] for q in qs.values()) for k in
                 ("calls_received", "calls_answered", "calls_abandoned", "calls_waiting",
                  "agents_online", "calls_online", "connections_online")}
        return {"type": "STATS", "day": "2026-12-01", **total, "longest_wait": 40, "sla": 92.5,
                "average_queue_time": 5, "average_handle_time": 60, "average_abandoned_time": 25,
                "sla_with_abandoned": 84.09, "abandon_rate": 9.09, "queues": qs}

    def agent(self, agentid: str, status: str, queues: list[str], since: float, **extra: Any) -> dict:
        a = {"type": "AGENT", "agentid": agentid, "status": status, "queue": ",".join(queues),
             "queues": queues, "time": int(since), "calls_taken": 3, "talk_time": 300}
        if status == "PAUSED":
            a["reason"] = extra.get("reason", "")
        if not self.legacy:
            a.update({"name": f"Agent {agentid[-1]}", "team": "", "ringing": "", "wrapup_until": 0,
                      "paused": status == "PAUSED", "reason": "", "login_time": int(self.now - 3600),
                      "last_call": int(self.now - 120)})
            a.update(extra)
        return a

    def snapshot(self) -> list[dict[str, Any]]:
        n = self.now
        agents = [
            self.agent("2001", "AVAIL", ["q-sales"], n - 30, ringing="c-ring"),
            self.agent("2002", "AVAIL", ["q-sales", "q-billing"], n - 5, wrapup_until=int(n + 600)),
            self.agent("2003", "INCALL", ["q-sales"], n - 65, paused=True, reason="Lunch"),
            self.agent("2004", "INCALL", ["q-support"], n - 10),
            self.agent("2005", "PAUSED", ["q-support"], n - 2000, reason="Break"),
            self.agent("2006", "AVAIL", ["q-billing"], n - 100),
            self.agent("2007", "PAUSED", ["q-billing"], n - 50, reason="Coaching"),
            self.agent("2008", "AVAIL", ["q-billing"], n - 300),
        ]
        calls = []
        for i, (cid, name, queue, pos) in enumerate([
            ("0470000001", "ALICE MARTIN", "q-sales", 1), ("0470000002", "", "q-sales", 2),
            ("0470000003", "BOB", "q-support", 1),
        ]):
            call = {"type": "CALL", "id": f"c-{i}", "callerid": cid, "status": "QUEUED",
                    "queue": queue, "time": int(n - 40 + i * 10), "answered": 0}
            if not self.legacy:
                call.update({"position": pos, "callername": name})
            calls.append(call)
        return [self.stats(), *agents, *calls]


# The CONFIG of the HELLO answer; the old server's has none of its keys.
CONFIG = {"type": "CONFIG", "pause_reasons": ["Break", "Lunch", "Coaching"], "pause_free_text": False}
OLD_CONFIG = {"type": "CONFIG"}


async def crafted_site(legacy: bool = False) -> tuple[Any, str]:
    site = make_site(CraftedCenter(time.time(), legacy), static_dir=STATIC_DIR, reactor=reactor,
                     config=OLD_CONFIG if legacy else CONFIG)
    port = await listen(site)
    return port, f"http://127.0.0.1:{port.getHost().port}/"


def check_crafted(page, url: str, out: dict) -> None:
    # Agents by name with id beside; ringing, wrap-up, pending pause as states.
    page.goto(url)
    page.wait_for_selector('#conn[data-state="open"]')
    page.wait_for_selector('tr[data-agent="2008"]')
    out["agent_cell"] = page.inner_text('tr[data-agent="2001"] td.agent-cell')
    out["activity"] = page.eval_on_selector_all(
        "tr[data-agent]", "rs => Object.fromEntries(rs.map(r => [r.dataset.agent, r.dataset.activity]))")
    out["pending_text"] = page.text_content('tr[data-agent="2003"] td.status-cell')
    out["wrapup_timer"] = page.inner_text('tr[data-agent="2002"] [data-role="since"]')
    out["call_rows"] = page.eval_on_selector_all(
        "tr[data-call]", "rs => rs.map(r => [r.querySelector('[data-role=position]').innerText,"
        " r.querySelector('.caller').innerText])")
    out["queue_agents"] = page.eval_on_selector_all(
        "tr[data-queue]", "rs => Object.fromEntries(rs.map(r => [r.dataset.queue,"
        " r.querySelector('[data-role=queue-agents]').innerText]))")
    # Pause reasons from CONFIG; no free text when the server allows none.
    page.click('tr[data-agent="2006"] [data-action="pause"]')
    out["reasons"] = page.eval_on_selector_all("[data-reason]", "bs => bs.map(b => b.dataset.reason)")
    out["no_reason"] = page.inner_text('[data-reason=""]')
    out["free_text"] = page.query_selector("#pause-text") is not None
    page.keyboard.press("Escape")
    # Talk time ticks during a call: 300 s of the day's calls + this one.
    t1 = page.inner_text('tr[data-agent="2004"] [data-role="talk-time"]')
    page.wait_for_function(
        f"() => document.querySelector('tr[data-agent=\"2004\"] [data-role=talk-time]').innerText !== '{t1}'")
    out["talk_ticks"] = (t1, page.inner_text('tr[data-agent="2004"] [data-role="talk-time"]'))

    # The laptop shows the queue table without scrolling at 8 agents.
    page.set_viewport_size(LAPTOP)
    out["laptop_outside"] = page.evaluate(OUTSIDE_JS, ".panel-queues tr")
    out["laptop_overflow"] = page.evaluate(OVERFLOW_JS)
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "laptop-1366x768-8-agents.png"))

    # ?queues= filters every list and figure; totals re-computed from the queues'.
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.goto(url + "?queues=q-sales,q-support")
    page.wait_for_selector('#conn[data-state="open"]')
    page.wait_for_selector('tr[data-agent="2001"]')
    out["f_agents"] = sorted(page.eval_on_selector_all("tr[data-agent]", "rs => rs.map(r => r.dataset.agent)"))
    out["f_calls"] = sorted(page.eval_on_selector_all("tr[data-call]", "rs => rs.map(r => r.dataset.call)"))
    out["f_queues"] = page.eval_on_selector_all("tr[data-queue]", "rs => rs.map(r => r.dataset.queue)")
    out["f_kpis"] = page.eval_on_selector_all(
        "[data-kpi]", "ts => Object.fromEntries(ts.map(t => [t.dataset.kpi, t.querySelector('.kpi-value').innerText]))")
    # The control: choose one queue; the choice survives a reload without ?queues.
    page.click('[data-action="scope"]')
    page.click('[data-queue-choice="q-sales"]')  # unticks q-sales: q-support left
    out["f_after_click"] = page.eval_on_selector_all("tr[data-queue]", "rs => rs.map(r => r.dataset.queue)")
    page.goto(url)
    page.wait_for_selector('tr[data-agent="2004"]')
    out["f_saved"] = sorted(page.eval_on_selector_all("tr[data-agent]", "rs => rs.map(r => r.dataset.agent)"))
    out["f_label"] = page.inner_text('[data-action="scope"]')
    page.click('[data-action="scope"]')
    page.click('[data-action="scope-all"]')
    page.wait_for_selector('tr[data-agent="2008"]')


def check_legacy(page, url: str, out: dict) -> None:
    """A server without issue 15's keys: the page works as before."""
    page.goto(url)
    page.wait_for_selector('#conn[data-state="open"]')
    page.wait_for_selector('tr[data-agent="2008"]')
    out["legacy_statuses"] = page.eval_on_selector_all(
        "tr[data-agent]", "rs => Object.fromEntries(rs.map(r => [r.dataset.agent, r.dataset.activity]))")
    out["legacy_queue_agents"] = page.eval_on_selector_all(
        "tr[data-queue]", "rs => Object.fromEntries(rs.map(r => [r.dataset.queue,"
        " r.querySelector('[data-role=queue-agents]').innerText]))")
    page.click('tr[data-agent="2006"] [data-action="pause"]')
    out["legacy_reasons"] = page.eval_on_selector_all("[data-reason]", "bs => bs.map(b => b.dataset.reason)")
    out["legacy_free_text"] = page.query_selector("#pause-text") is not None
    page.keyboard.press("Escape")


# -- the simulated PBX: 200 agents, 10 queues --------------------------------------

async def simulated_site() -> tuple[list[Any], Any, str, Any]:
    """The service on the simulator, its time run until every agent is in."""
    clock = FastClock()
    clock.advance(time.time() - 240)
    port, pbx = await start_simulator(reactor, username="callcenter", secret="wall-secret",
                                      agents=SIM_AGENTS, calls_per_minute=3.0, queues=SIM_QUEUES,
                                      seed=15, clock=clock,
                                      behaviour=Behaviour(mean_between_logouts=1e9))
    center = Callcenter(clock, sla=10)
    client = AMIClient(reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
                       "callcenter", "wall-secret", ping_interval=0)
    center.attach(client)
    client.startService()
    await client.whenConnected()
    await client.action("Ping")
    for _ in range(240):
        run_for(clock, 1.0)
        await client.action("Ping")  # every event sent so far has been handled
    site = make_site(center, static_dir=STATIC_DIR, reactor=reactor)
    web = await listen(site)

    async def stop() -> None:
        await web.stopListening()
        center.stop()
        await defer.maybeDeferred(client.stopService)
        await pbx.stop()

    return [stop], center, f"http://127.0.0.1:{web.getHost().port}/", pbx


def check_simulated(page, url: str, center: Any, out: dict) -> None:
    page.set_viewport_size(WALL)
    page.goto(url + "?view=wall")
    page.wait_for_selector('#conn[data-state="open"]')
    page.wait_for_function(f"() => document.querySelectorAll('.atile').length >= {out['sim_agents']}")
    page.wait_for_timeout(300)  # the grid's size settles (ResizeObserver)
    out["wall_tiles"] = page.eval_on_selector_all(".atile", "ts => ts.length")
    out["wall_queue_tiles"] = sorted(page.eval_on_selector_all(".qtile", "ts => ts.map(t => t.dataset.queue)"))
    out["wall_outside"] = page.evaluate(OUTSIDE_JS, ".atile, .qtile, .wtile")
    out["wall_overflow"] = page.evaluate(OVERFLOW_JS)
    out["wall_vscroll"] = page.evaluate("() => document.documentElement.scrollHeight > innerHeight")
    out["wall_order"] = page.eval_on_selector_all(".atile", "ts => ts.map(t => t.dataset.activity)")
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, "wall-1920x1080.png"))

    # Filtered wall: only q-vip's agents, figures of q-vip only.
    page.goto(url + "?view=wall&queues=q-vip")
    page.wait_for_selector('.qtile[data-queue="q-vip"]')
    page.wait_for_timeout(300)
    out["wall_f_queues"] = page.eval_on_selector_all(".qtile", "ts => ts.map(t => t.dataset.queue)")
    out["wall_f_agents"] = sorted(page.eval_on_selector_all(".atile", "ts => ts.map(t => t.dataset.agent)"))
    out["wall_f_received"] = page.inner_text('[data-kpi="calls_received"] .wtile-value')

    for name, size in (("laptop-1366x768", LAPTOP), ("phone-390x844", PHONE)):
        page.set_viewport_size(size)
        page.goto(url + "?queues=")
        page.wait_for_selector('#conn[data-state="open"]')
        page.wait_for_function(f"() => document.querySelectorAll('tr[data-agent]').length >= {out['sim_agents']}")
        out[f"{name}_overflow"] = page.evaluate(OVERFLOW_JS)
        out[f"{name}_hscroll"] = page.evaluate(HSCROLL_JS)
        page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"))


# -- the scripted PBX: a pause set during a call ------------------------------------

def check_pending(page, rig, out: dict) -> None:
    """Ringing, then the call; Pause during it is pending, PAUSED at hang-up."""
    peer = rig.peer
    agent = 'tr[data-agent="1001"]'
    uid = peer.new_uid()
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.goto(rig.url)
    page.wait_for_selector('#conn[data-state="open"]')
    page.wait_for_selector(f'{agent}[data-status="AVAIL"]')
    join = peer.event("QueueCallerJoin", Channel=f"PJSIP/caller-{uid}", CallerIDNum="0470000009",
                      CallerIDName="CAROL", Uniqueid=uid, Queue="q-callcenter", Position=1, Count=1)
    on_reactor(rig.feed, join, peer.event(
        "AgentCalled", Channel=f"PJSIP/caller-{uid}", CallerIDNum="0470000009", CallerIDName="CAROL",
        Uniqueid=uid, DestChannel="Local/1001@agent-connect-00000003;1", Queue="q-callcenter",
        Interface="Local/1001@agent-connect", MemberName="1001"))
    page.wait_for_selector(f'{agent}[data-activity="ringing"]')
    out["ring_caller"] = page.inner_text(f'tr[data-call="{uid}"] .caller')
    out["ring_position"] = page.inner_text(f'tr[data-call="{uid}"] [data-role="position"]')
    on_reactor(rig.feed, peer.connect(uid, "0470000009", "1001"))
    page.wait_for_selector(f'{agent}[data-status="INCALL"][data-activity="incall"]')
    page.click(f'{agent} [data-action="pause"]')
    page.click('[data-dialog="pause"] [data-reason="Lunch"]')
    page.wait_for_selector(f'{agent}[data-status="INCALL"][data-activity="pending"]')
    out["pending"] = " ".join(page.text_content(f"{agent} td.status-cell").split())
    page.goto(rig.url + "?view=wall")  # the wall tile says it too
    page.wait_for_selector('.atile[data-agent="1001"][data-activity="pending"]')
    out["pending_wall"] = page.text_content('.atile[data-agent="1001"] [data-role="status"]')
    on_reactor(rig.feed, peer.complete(uid, "0470000009", "1001"))
    page.wait_for_selector('.atile[data-agent="1001"][data-status="PAUSED"]')
    out["after_hangup"] = page.text_content('.atile[data-agent="1001"] [data-role="status"]')
    out["pauses"] = [{k: v for k, v in p.items() if k != "ActionID"} for p in on_reactor(peer.pauses)]


# -- the module's one browser ----------------------------------------------------

def drive(urls: dict[str, str], center: Any, rig: Any, out: dict) -> None:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            check_crafted(page, urls["crafted"], out)
            check_legacy(page, urls["legacy"], out)
            check_simulated(page, urls["sim"], center, out)
            check_pending(page, rig, out)
        finally:
            out["errors"] = errors
            browser.close()


def secs(text: str) -> int:
    m, s = text.split(":")
    return int(m) * 60 + int(s)


def agent_queues(center: Any) -> dict[str, list[str]]:
    return {a["agentid"]: a["queues"] for a in center.snapshot() if a.get("type") == "AGENT"}


@pytest_twisted.ensureDeferred
async def test_wall_filter_layouts_and_pending_pause_in_headless_chromium(rig):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs chromium", pytrace=False)
    crafted_port, crafted_url = await crafted_site()
    legacy_port, legacy_url = await crafted_site(legacy=True)
    await rig.feed(rig.peer.login("1001"))
    stops, center, sim_url, pbx = await simulated_site()
    queues_of = agent_queues(center)
    sim_stats = center.stats()
    out: dict[str, Any] = {"sim_agents": len(queues_of)}
    try:
        await threads.deferToThread(
            drive, {"crafted": crafted_url, "legacy": legacy_url, "sim": sim_url}, center, rig, out)
    finally:
        await crafted_port.stopListening()
        await legacy_port.stopListening()
        for stop in stops:
            await stop()

    assert out["errors"] == []
    # Crafted objects: what each of issue 15's keys shows.
    assert out["agent_cell"].split() == ["Agent", "1", "2001"]
    assert out["activity"] == {"2001": "ringing", "2002": "wrapup", "2003": "pending", "2004": "incall",
                               "2005": "longpause", "2006": "avail", "2007": "paused", "2008": "avail"}
    assert " ".join(out["pending_text"].split()) == "In call · pause next: Lunch"
    assert 0 < secs(out["wrapup_timer"]) <= 600  # the time left of wrapup_until
    assert out["call_rows"] == [["1", "ALICE MARTIN 0470000001"], ["2", "0470000002"], ["1", "BOB 0470000003"]]
    assert out["queue_agents"] == {"q-billing": "2 / 3", "q-sales": "0 / 3", "q-support": "0 / 2"}
    assert out["reasons"] == ["Break", "Lunch", "Coaching", ""] and out["free_text"] is False
    assert out["no_reason"] == "No reason"
    t0, t1 = map(secs, out["talk_ticks"])
    assert 310 <= t0 < t1  # the day's 300 s + the call begun 10 s before, ticking
    assert out["laptop_outside"] == [] and out["laptop_overflow"] == []
    # Filter: the other queue's agents, calls, rows and figures are gone.
    assert out["f_agents"] == ["2001", "2002", "2003", "2004", "2005"]
    assert out["f_calls"] == ["c-0", "c-1", "c-2"]
    assert out["f_queues"] == ["q-sales", "q-support"]
    k = out["f_kpis"]
    assert (k["calls_received"], k["calls_answered"], k["calls_abandoned"]) == ("14", "10", "4")
    assert k["calls_waiting"] == "3"
    # Means weighted by their counts: (8*10 + 2*40) / 10 answered = 16 s; SLA (8*75 + 2*50) / 10.
    assert k["average_queue_time"] == "0:16" and k["sla"] == "70.0%"
    assert k["average_abandoned_time"] == "0:25"  # (2*20 + 2*30) / 4
    assert k["agents_online"] == "0 / 5"  # ringing, wrap-up, calls, pause; 2006..2008 are billing's
    assert out["f_after_click"] == ["q-support"]
    assert out["f_saved"] == ["2004", "2005"] and "q-support" in out["f_label"]
    # An old server: no CONFIG, no new keys — the former behaviour.
    assert out["legacy_statuses"] == {"2001": "avail", "2002": "avail", "2003": "incall", "2004": "incall",
                                      "2005": "longpause", "2006": "avail", "2007": "paused", "2008": "avail"}
    assert out["legacy_queue_agents"] == {"q-billing": "3 / 4", "q-sales": "2 / 3", "q-support": "0 / 2"}
    assert out["legacy_reasons"] == ["Break", "Lunch", "Training", "After call work", "Meeting", "Other"]
    assert out["legacy_free_text"] is True

    # The simulator: 200 agents and 10 queues on one wall screen.
    assert out["sim_agents"] == SIM_AGENTS
    assert out["wall_tiles"] == SIM_AGENTS
    assert out["wall_queue_tiles"] == sorted(SIM_QUEUES)
    assert out["wall_outside"] == []
    assert out["wall_overflow"] == []
    assert out["wall_vscroll"] is False
    ranks = ["longpause", "ringing", "pending", "wrapup", "paused", "loggedin", "incall", "avail"]
    order = [ranks.index(a) for a in out["wall_order"] if a in ranks]
    assert order == sorted(order)  # attention first
    assert out["wall_f_queues"] == ["q-vip"]
    assert out["wall_f_agents"] == sorted(a for a, qs in queues_of.items() if "q-vip" in qs)
    assert out["wall_f_received"] == str(sim_stats["queues"]["q-vip"]["calls_received"])
    for name in ("laptop-1366x768", "phone-390x844"):
        assert out[f"{name}_overflow"] == [], name
        assert out[f"{name}_hscroll"] is False, name

    # A pause set during a call: pending in the row and on the wall, PAUSED at hang-up.
    assert out["ring_caller"] == "CAROL 0470000009" and out["ring_position"] == "1"
    assert out["pending"] == "In call · pause next: Lunch"
    assert out["pending_wall"] == "In call · pause next: Lunch"
    assert out["after_hangup"] == "Paused · Lunch"
    assert out["pauses"] == [{"Action": "QueuePause", "Interface": "Local/1001@agent-connect", "Paused": "true",
                              "Queue": "q-callcenter", "Reason": "Lunch"}]
