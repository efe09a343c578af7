"""The agent page (/agent) in headless Chromium, driven by a recorded trace.

The scripted AMI peer (tests/support/fake_asterisk.py, through tests/web's rig)
replays ``answered`` from ../shared/ami-traces: agent 1001 (user "ann") sees
its first caller within one second of the peer sending the AgentConnect, with
the number, queue and wait Asterisk itself recorded (``expected.json``); the
screen-pop button carries the encoded address and opens by itself
(``--screen-pop-auto``); today's figures are the trace's; Pause/Available act
on ann's own agent only, and a forged ``PAUSE:1002`` from ann's browser gets
an ERROR while no QueuePause for 1002 reaches the PBX.  The same centre
served open on loopback (no users) shows a chooser and ``?agent=ID``.
"""

from __future__ import annotations

import json
import os
import re
import time
from urllib.parse import quote

import pytest
import pytest_twisted
from support.traces import TRACES, trace_bytes, trace_index
from twisted.internet import reactor, threads
from web.support import ARTIFACTS, STATIC_DIR, Member, listen
from web.test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, on_reactor

from callcenter.web import make_site
from callcenter.web.page_config import config_object

from .support import PASSWORD, start_auth_rig, user_line, write_users

TEMPLATE = "https://crm.example/search?phone={callerid}&queue={queue}&call={uniqueid}"
TRACE = "answered"
AGENT = "1001"
CONNECT_BOUND = 1.0  # seconds from AgentConnect on the wire to the caller on the page (issue 16)
_TS = re.compile(rb"(?m)^Timestamp: (\d+\.\d+)")


SHOWN_WATCH = """(number) => {
    window.callerShownAt = null;
    new MutationObserver((_records, observer) => {
        const shown = document.querySelector('[data-role="callerid"]');
        if (shown && shown.textContent === number) {
            window.callerShownAt = Date.now();
            observer.disconnect();
        }
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""


def trace_events(name: str) -> list[tuple[str, bytes]]:
    """(event name, bytes) of the trace's events, without the recording session's
    own login and answers."""
    data, rows = trace_bytes(f"{name}.ami"), trace_index(f"{name}.ami")
    return [(r["name"], data[r["off"]:r["off"] + r["len"]]) for r in rows
            if r["kind"] == "Event" and not r["ActionID"] and r["name"] != "FullyBooted"]


def shifted(events: list[tuple[str, bytes]], connect: int) -> list[bytes]:
    """The events with their Timestamps moved so that ``events[connect]`` happens now
    (the service ignores times a day away from its clock)."""
    at = float(_TS.search(events[connect][1]).group(1))
    shift = time.time() - at
    return [_TS.sub(lambda m: b"Timestamp: %.6f" % (float(m.group(1)) + shift), b) for _n, b in events]


def first_connect(events: list[tuple[str, bytes]], agent: str) -> int:
    return next(i for i, (name, block) in enumerate(events)
                if name == "AgentConnect" and f"\r\nMemberName: {agent}\r\n".encode() in block)


def crm(caller: dict) -> str:
    """TEMPLATE filled from a caller row of expected.json (no value there needs encoding)."""
    return (f"https://crm.example/search?phone={caller['cid']}&queue={caller['queue']}"
            f"&call={caller['uniqueid']}")


def log_in(page, url: str, name: str) -> None:
    page.goto(url + "agent")
    page.wait_for_url("**/login?then=agent")
    page.fill("#login-user", name)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    page.wait_for_url("**/agent")
    page.wait_for_selector('#conn[data-state="open"]')


def forged(page, *frames: str) -> list[str]:
    """Frames sent from the agent's own browser (its cookie) on a fresh socket,
    bypassing the page's buttons; the ERROR messages that came back."""
    return page.evaluate(
        """(frames) => new Promise((done) => {
            const ws = new WebSocket(`ws://${location.host}/callcenter`);
            const errors = [];
            ws.onopen = () => frames.forEach((f) => ws.send(f));
            ws.onmessage = (e) => {
                for (const line of e.data.split("\\n")) {
                    const o = JSON.parse(line);
                    if (o.type === "ERROR") errors.push(o.message);
                }
                if (errors.length === frames.length) { ws.close(); done(errors); }
            };
        })""",
        list(frames),
    )


def drive(rig, url: str, open_url: str, events: list[tuple[str, bytes]], expected: dict) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {"errors": [], "popups": []}
    peer = rig.peer
    cut = first_connect(events, AGENT)
    blocks = shifted(events, cut)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            # The CRM is not on the network here: the popup gets a stand-in page.
            context.route("https://crm.example/**", lambda route: route.fulfill(body="crm", content_type="text/html"))
            context.on("page", lambda pg: out["popups"].append(pg))
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda e: out["errors"].append(str(e)))
            page.on("console", lambda m: m.type == "error" and out["errors"].append(m.text))
            log_in(page, url, "ann")

            # Up to the AgentConnect: both agents log in, callers queue, 1001 rings.
            on_reactor(rig.feed, *blocks[:cut])
            page.wait_for_selector('[data-agent-status="AVAIL"]')
            # Ringing is shown, the number is not: only the agent who takes the call gets it.
            page.wait_for_selector('[data-role="no-call"] >> text="Your phone is ringing…"')
            out["number_before_answer"] = expected["cid"] in page.inner_text("body")

            # The moment the DOM shows the caller, taken in the page by a
            # MutationObserver (the browser's clock is this machine's).
            page.evaluate(SHOWN_WATCH, expected["cid"])

            def send_connect() -> float:
                sent = time.time()
                peer.send(blocks[cut])
                return sent

            sent = on_reactor(send_connect)
            page.wait_for_selector(f'[data-role="callerid"] >> text="{expected["cid"]}"')
            out["connect_latency"] = page.evaluate("window.callerShownAt") / 1000 - sent
            out["call"] = {role: page.inner_text(f'[data-role="{role}"]') for role in ("queue", "hold", "callername")}
            out["status"] = page.get_attribute("[data-agent-status]", "data-agent-status")
            out["href"] = page.get_attribute('[data-action="screen-pop"]', "href")
            os.makedirs(ARTIFACTS, exist_ok=True)
            page.screenshot(path=os.path.join(ARTIFACTS, "agent-page-call.png"), full_page=True)

            # The rest of the recording: 1001's second call, both calls end.  Fed up
            # to that call's AgentConnect and shown first: seconds apart on a real
            # PBX (a frame carries each object's latest state only).
            second = cut + 1 + first_connect(events[cut + 1:], AGENT)
            cid = re.search(rb"\r\nCallerIDNum: ([^\r]*)\r\n", blocks[second]).group(1).decode()
            on_reactor(rig.feed, *blocks[cut + 1:second + 1])
            page.wait_for_selector(f'[data-role="callerid"] >> text="{cid}"')
            on_reactor(rig.feed, *blocks[second + 1:])
            page.wait_for_selector('[data-figure="calls"] .kpi-value >> text="2"')
            page.wait_for_selector('[data-role="no-call"]')
            out["figures"] = {k: page.inner_text(f'[data-figure="{k}"] .kpi-value') for k in ("calls", "talk_time", "aht")}

            # A scripted caller whose number needs encoding in the CRM address.
            uid = peer.new_uid()
            on_reactor(rig.feed, peer.join(uid, "+32 2/555#01"), peer.connect(uid, "+32 2/555#01", AGENT, hold=4))
            page.wait_for_selector('[data-role="callerid"] >> text="+32 2/555#01"')
            out["href_encoded"] = page.get_attribute('[data-action="screen-pop"]', "href")
            out["uid"] = uid

            # Pause during that call (the PBX is asked for 1001 only): it starts when the call ends.
            page.click('[data-action="pause"]')
            out["reasons"] = [e.get_attribute("data-reason") for e in page.query_selector_all("[data-reason]")]
            page.click('[data-dialog="pause"] [data-reason="Lunch"]')
            page.wait_for_selector('[data-role="pausing"]')
            on_reactor(rig.feed, peer.complete(uid, "+32 2/555#01", AGENT, talk=9))
            page.wait_for_selector('[data-role="no-call"]')
            page.wait_for_selector('[data-agent-status="PAUSED"]')
            out["reason"] = page.inner_text('[data-role="reason"]')
            page.wait_for_selector('[data-pause-reason="Lunch"]')
            page.screenshot(path=os.path.join(ARTIFACTS, "agent-page-paused.png"), full_page=True)
            page.click('[data-action="avail"]')
            page.wait_for_selector('[data-agent-status="AVAIL"]')
            out["lunch_kept"] = page.query_selector('[data-pause-reason="Lunch"]') is not None

            # Forged frames for another agent from ann's own browser.
            out["forged"] = forged(page, "PAUSE:1002:Lunch", "AVAIL:1002")
            out["pauses"] = on_reactor(peer.pauses)

            # Open on loopback (no users): a chooser, then ?agent=ID.
            other = browser.new_context(viewport={"width": 1280, "height": 900})
            opage = other.new_page()
            opage.set_default_timeout(WAIT_MS)
            opage.on("pageerror", lambda e: out["errors"].append(str(e)))
            opage.goto(open_url + "agent")
            opage.wait_for_selector('[data-agent-link="1002"]')
            out["chooser"] = sorted(e.get_attribute("data-agent-link") for e in opage.query_selector_all("[data-agent-link]"))
            opage.click('[data-agent-link="1002"]')
            opage.wait_for_url("**/agent?agent=1002")
            opage.wait_for_selector('[data-figure="calls"] .kpi-value >> text="2"')
            out["open_status"] = opage.get_attribute("[data-agent-status]", "data-agent-status")
            popups = [pg for pg in out["popups"] if pg is not page]
            for pg in popups:
                pg.wait_for_load_state()
            out["popup_urls"] = [pg.url for pg in popups]
        finally:
            browser.close()
    return out


@pytest_twisted.ensureDeferred
async def test_agent_page_in_headless_chromium(tmp_path, redis_server):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs chromium", pytrace=False)
    expected_all = json.loads((TRACES / f"{TRACE}.expected.json").read_text())
    calls = [c for c in expected_all["callers"] if c["agent"] == AGENT]
    first = calls[0]
    users = str(tmp_path / "users")
    write_users(users, user_line("ann", "agent", agent=AGENT), user_line("bob", "agent", agent="1002"))
    arig = await start_auth_rig(tmp_path, redis_server.url, users, "--screen-pop-url", TEMPLATE, "--screen-pop-auto")
    rig = arig.rig
    open_port = await listen(make_site(rig.center, reactor=reactor, static_dir=STATIC_DIR))
    try:
        for name in ("1001", "1002"):  # the PBX answers QueuePause for the trace's members
            iface = f"Local/{name}@agent-connect"
            rig.peer.members[iface] = Member(name, iface, [first["queue"]])
        open_url = f"http://127.0.0.1:{open_port.getHost().port}/"
        # What the shipped manager.conf user reads (rig.feed counts what arrives).
        session = rig.peer.pbx.connections[-1]
        events = [(n, b) for n, b in trace_events(TRACE) if session.reads(b)]
        out = await threads.deferToThread(drive, rig, arig.url, open_url, events, first)
    finally:
        await open_port.stopListening()
        await arig.stop()

    print(f"agent page: caller shown {out['connect_latency'] * 1000:.0f} ms after the AgentConnect was sent")
    assert out["errors"] == []
    assert out["connect_latency"] < CONNECT_BOUND, out["connect_latency"]
    assert out["status"] == "INCALL"
    hold = first["holdtime_s"]
    assert not out["number_before_answer"]
    # The caller's name as the recording's AgentConnect carries it (CallerIDName).
    assert out["call"] == {"queue": first["queue"], "hold": f"0:{hold:02d}", "callername": "Caller"}
    assert out["reasons"] == list(config_object()["pause_reasons"])  # the CONFIG object's
    assert out["href"] == crm(first)
    assert out["href_encoded"] == ("https://crm.example/search?phone=%2B32%202%2F555%2301&queue=q-callcenter"
                                   f"&call={quote(out['uid'], safe='')}")
    talk = sum(c["talktime_s"] for c in calls)
    aht = int(talk / len(calls) + 0.5)
    assert out["figures"] == {"calls": str(len(calls)), "talk_time": f"0:{talk:02d}", "aht": f"0:{aht:02d}"}
    # Opened by itself once per call that connected while the page was open.
    assert out["popup_urls"] == [crm(c) for c in calls] + [out["href_encoded"]]
    assert out["reason"] == "Lunch" and out["lunch_kept"]
    assert out["forged"] == ["not allowed", "not allowed"]
    iface = f"Local/{AGENT}@agent-connect"
    assert [(p["Interface"], p["Paused"], p.get("Reason")) for p in out["pauses"]] == [
        (iface, "true", "Lunch"), (iface, "false", None)]
    assert out["chooser"] == ["1001", "1002"] and out["open_status"] == "AVAIL"
    audit = [line.split(";")[1:] for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert audit == [["ann", "127.0.0.1", "PAUSE", AGENT, "Lunch", "Success"],
                     ["ann", "127.0.0.1", "AVAIL", AGENT, "", "Success"],
                     ["ann", "127.0.0.1", "PAUSE", "1002", "Lunch", "denied: not allowed"],
                     ["ann", "127.0.0.1", "AVAIL", "1002", "", "denied: not allowed"]]
