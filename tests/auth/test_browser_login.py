"""Logins in headless Chromium: a supervisor pauses an agent with a reason;
that agent, in another browser context, sees only its own buttons; logout."""

from __future__ import annotations

import os

import pytest
import pytest_twisted
from twisted.internet import threads
from web.support import ARTIFACTS
from web.test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, row

from .support import PASSWORD, start_auth_rig, user_line, write_users


def log_in(page, url: str, name: str) -> None:
    page.goto(url)
    page.wait_for_url("**/login")
    page.fill("#login-user", name)
    page.fill("#login-password", PASSWORD)
    page.press("#login-password", "Enter")
    page.wait_for_selector('#conn[data-state="open"]')


def drive(url: str) -> dict:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    out: dict = {"errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            sup = browser.new_context(viewport={"width": 1600, "height": 1000})
            page = sup.new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda e: out["errors"].append(str(e)))
            page.on("console", lambda m: m.type == "error" and out["errors"].append(m.text))

            # A wrong password is told on the page, and nothing else happens.
            page.goto(url)
            page.wait_for_url("**/login")
            page.fill("#login-user", "sue")
            page.fill("#login-password", "wrong")
            page.press("#login-password", "Enter")
            page.wait_for_selector('[data-error] >> text="wrong user name or password"')
            os.makedirs(ARTIFACTS, exist_ok=True)
            page.screenshot(path=os.path.join(ARTIFACTS, "login.png"))
            out["errors"] = [e for e in out["errors"] if "401" not in e]  # the refused POST itself

            log_in(page, url, "sue")
            page.wait_for_selector('[data-user="sue"][data-role="supervisor"]')
            page.click(f'{row("agent", "1002")} [data-action="pause"]')
            page.click('[data-dialog="pause"] [data-reason="Lunch"]')
            page.wait_for_selector(f'{row("agent", "1002")}[data-status="PAUSED"]')
            out["reason"] = page.inner_text(f'{row("agent", "1002")} [data-role="reason"]')
            out["sup_buttons"] = len(page.query_selector_all('[data-action="pause"]'))

            agent = browser.new_context(viewport={"width": 1280, "height": 800})
            apage = agent.new_page()
            apage.set_default_timeout(WAIT_MS)
            apage.on("pageerror", lambda e: out["errors"].append(str(e)))
            log_in(apage, url, "ann")
            apage.wait_for_selector(row("agent", "1001"))
            apage.screenshot(path=os.path.join(ARTIFACTS, "dashboard-agent.png"), full_page=True)
            out["agent_rows"] = [e.get_attribute("data-agent") for e in apage.query_selector_all("tr[data-agent]")]
            out["agent_pause"] = [e.evaluate("b => b.closest('tr').dataset.agent")
                                  for e in apage.query_selector_all('[data-action="pause"]')]
            out["agent_avail"] = len(apage.query_selector_all('[data-action="avail"]'))
            apage.click(f'{row("agent", "1001")} [data-action="pause"]')
            apage.click('[data-dialog="pause"] [data-reason="Break"]')
            apage.wait_for_selector(f'{row("agent", "1001")}[data-status="PAUSED"]')
            # The supervisor's page sees the agent's own pause too.
            page.wait_for_selector(f'{row("agent", "1001")}[data-status="PAUSED"]')

            apage.click('[data-action="logout"]')
            apage.wait_for_url("**/login")
            for attempt in range(3):
                # The dashboard's own reload on its closed socket may abort this
                # navigation (net::ERR_ABORTED); asking again is what a user does.
                try:
                    apage.goto(url)
                    apage.wait_for_url("**/login")  # the session is gone, not just the page
                    break
                except PlaywrightError:
                    if attempt == 2:
                        raise
            out["supervisor_still_open"] = page.get_attribute("#conn", "data-state")
        finally:
            browser.close()
    return out


@pytest_twisted.ensureDeferred
async def test_login_roles_and_logout_in_headless_chromium(tmp_path, redis_server):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs chromium", pytrace=False)
    users = str(tmp_path / "users")
    write_users(users, user_line("sue", "supervisor"), user_line("ann", "agent", agent="1001"))
    arig = await start_auth_rig(tmp_path, redis_server.url, users)
    try:
        peer = arig.rig.peer
        await arig.rig.feed(peer.login("1001"), peer.login("1002"), peer.login("1003"))
        out = await threads.deferToThread(drive, arig.url)
    finally:
        await arig.stop()
    assert out["errors"] == []
    assert out["reason"] == "Lunch" and out["sup_buttons"] == 3
    assert out["agent_rows"] == ["1001"] and out["agent_pause"] == ["1001"] and out["agent_avail"] == 1
    assert out["supervisor_still_open"] == "open"
    iface = "Local/{}@agent-connect"
    assert [(p["Interface"], p.get("Reason")) for p in peer.pauses()] == [
        (iface.format(1002), "Lunch"), (iface.format(1001), "Break")]
    audit = [line.split(";")[1:] for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert audit == [["sue", "127.0.0.1", "PAUSE", "1002", "Lunch", "Success"],
                     ["ann", "127.0.0.1", "PAUSE", "1001", "Break", "Success"]]
