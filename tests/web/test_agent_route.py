"""``/agent`` over HTTP on an open loopback site: the agent page with the
dashboard's strict headers, its own files, and nothing below it."""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet import reactor
from twisted.web.client import Agent, readBody

from callcenter.web.screen_pop import ScreenPop

from .support import start_rig


async def get(url: str) -> tuple[int, dict[str, str], bytes]:
    response = await Agent(reactor).request(b"GET", url.encode())
    body = await readBody(response)
    headers = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
    return response.code, headers, body


@pytest_twisted.ensureDeferred
async def test_agent_page_its_files_and_nothing_below_it():
    rig = await start_rig(screen_pop=ScreenPop.parse("https://crm.example/?p={callerid}", auto=True))
    try:
        code, headers, page = await get(rig.url + "agent?agent=1001")
        assert code == 200 and headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in headers["content-security-policy"]
        for ref, ctype in [("live.js", "text/javascript"), ("agent.js", "text/javascript"), ("agent.css", "text/css"),
                           ("app.css", "text/css"), ("vendor/vue.global.prod.js", "text/javascript")]:
            assert f'"{ref}"'.encode() in page
            code, headers, body = await get(rig.url + ref)
            assert code == 200 and headers["content-type"].startswith(ctype) and body, ref
        code, headers, _ = await get(rig.url + "agent/?agent=1001")
        assert code == 302 and headers["location"] == "../agent?agent=1001"
        code, _, _ = await get(rig.url + "agent/app.js")
        assert code == 404
        code, _, body = await get(rig.url + "config.json")
        assert json.loads(body)["screen_pop"] == {"configured": True, "auto": True}
    finally:
        await rig.stop()
