"""/healthz and /readyz (issue 13) on an access-controlled site: no login,
any Host (a probe names the service by address), nothing revealed beyond
up/down and the reason; everything else stays guarded and Host-checked."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import reactor

from callcenter.health import Health

from .support import start_auth_rig, user_line, write_users


@pytest_twisted.async_yield_fixture()
async def probed(tmp_path, redis_server):
    users = str(tmp_path / "users")
    write_users(users, user_line("root", "admin"))
    health = Health(reactor)
    r = await start_auth_rig(tmp_path, redis_server.url, users, health=health)
    yield r, health
    await r.stop()


@pytest_twisted.ensureDeferred
async def test_probes_need_no_login_and_say_only_up_or_down(probed) -> None:
    arig, health = probed
    code, headers, body = await arig.request("GET", "healthz", origin=None)
    assert (code, json.loads(body)) == (200, {"alive": True})
    assert headers["cache-control"] == "no-store"

    health.pbx_failed("connection refused")
    code, _h, body = await arig.request("GET", "readyz", origin=None, host="10.1.2.3:8080")
    assert (code, json.loads(body)) == (
        503, {"ready": False, "not_ready": ["pbx"], "checks": {"pbx": "connection refused", "web": "ok"}})

    health.pbx_logged_in()
    code, _h, body = await arig.request("GET", "readyz", origin=None)
    assert code == 503 and json.loads(body)["checks"]["pbx"] == "logged in, reconciling with the PBX"
    health.pbx_reconciled()
    code, _h, body = await arig.request("GET", "readyz", origin=None)
    assert (code, json.loads(body)) == (200, {"ready": True, "not_ready": [], "checks": {"pbx": "ok", "web": "ok"}})


@pytest.mark.parametrize("path", ["", "config.json"])
@pytest_twisted.ensureDeferred
async def test_everything_else_is_still_guarded_and_host_checked(probed, path: str) -> None:
    arig, _health = probed
    code, _h, _b = await arig.request("GET", path, origin=None)
    assert code in (302, 401)  # the page redirects to the login, the rest is refused
    code, _h, _b = await arig.request("GET", path, origin=None, host="evil.example")
    assert code == 421
