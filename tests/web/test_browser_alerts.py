"""Page alerts (issue 13 item 6) in headless Chromium: thresholds from
``--alert-*`` reach the page in CONFIG; crossing them in a replay lights the
banner, the tile, the queue row and the paused agent's row; a new alert
schedules one beep unless muted, and the mute survives a reload."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import threads

from callcenter.alerts import AlertThresholds, parse_pause_minutes
from callcenter.web.page_config import config_object

from .support import start_rig
from .test_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, on_reactor, row


def drive(rig) -> None:
    from playwright.sync_api import sync_playwright

    peer = rig.peer
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.clock.install()  # the page's own clock: pauses last minutes in a moment
            page.goto(rig.url)
            page.wait_for_selector('#conn[data-state="open"]')
            page.wait_for_selector('#alerts[data-alerts="0"][data-beeps="0"][data-muted="0"]')
            assert page.query_selector('[data-kpi="calls_waiting"][data-alert="on"]') is None

            # Two callers wait: above --alert-waiting 1.
            on_reactor(rig.feed, peer.login("1001"), peer.pause("1001", False),
                       peer.join(peer.new_uid(), "0611111111"), peer.join(peer.new_uid(), "0622222222"))
            page.wait_for_selector('#alerts li[data-alert-key="waiting:q-callcenter"]')
            page.wait_for_selector('[data-kpi="calls_waiting"][data-alert="on"]')
            page.wait_for_selector('tr[data-queue="q-callcenter"][data-alert="on"]')
            page.wait_for_selector('#alerts[data-beeps="1"]')
            assert "0611111111" not in page.inner_text("#alerts")

            # Mute, then a new alert: the agent paused for Lunch longer than Lunch=1.
            page.click('#alerts [data-action="mute"]')
            page.wait_for_selector('#alerts[data-muted="1"]')
            assert page.evaluate("localStorage.getItem('callcenter.alerts.muted')") == "1"
            on_reactor(rig.feed, peer.pause("1001", reason="Lunch"))
            page.wait_for_selector(f'{row("agent", "1001")}[data-status="PAUSED"]')
            assert page.get_attribute(row("agent", "1001"), "data-alert") is None
            page.clock.fast_forward(125_000)
            page.wait_for_selector(f'{row("agent", "1001")}[data-alert="pause"]')
            page.wait_for_selector('#alerts li[data-alert-key="pause:1001"]')
            page.wait_for_selector('#alerts li[data-alert-key="longest_wait:q-callcenter"]')
            page.wait_for_selector('[data-kpi="longest_wait"][data-alert="on"]')
            assert page.get_attribute("#alerts", "data-beeps") == "1"  # muted: none scheduled

            # The mute is remembered across a reload: the alerts are back, silent.
            page.reload()
            page.wait_for_selector('#conn[data-state="open"]')
            page.wait_for_selector('#alerts[data-muted="1"] li[data-alert-key="waiting:q-callcenter"]')
            assert page.get_attribute("#alerts", "data-beeps") == "0"

            # Unmuted, the next new alert beeps.
            page.click('#alerts [data-action="mute"]')
            page.wait_for_selector('#alerts[data-muted="0"]')
            on_reactor(rig.feed, peer.join(peer.new_uid(), "0633333333", queue="q-support"),
                       peer.join(peer.new_uid(), "0644444444", queue="q-support"))
            page.wait_for_selector('#alerts li[data-alert-key="waiting:q-support"]')
            page.wait_for_selector('#alerts[data-beeps="1"]')
            assert not errors, errors
        finally:
            browser.close()


@pytest_twisted.ensureDeferred
async def test_alerts_light_the_banner_and_rows_and_mute_works() -> None:
    alerts = AlertThresholds(waiting=1, longest_wait=90, sla=0, pause_minutes=parse_pause_minutes("Lunch=1,*=30"))
    rig = await start_rig(config=config_object(alerts=alerts))
    try:
        await threads.deferToThread(drive, rig)
    finally:
        await rig.stop()
