"""What the dashboard site serves over HTTP, and what it keeps private."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.web.client import Agent, PartialDownloadError, readBody

from callcenter.web import MissingAssets, make_site

from .support import STATIC_DIR, start_rig


async def get(url: str) -> tuple[int, dict[str, str], bytes]:
    response = await Agent(reactor).request(b"GET", url.encode())
    body = await readBody(response)
    headers = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
    return response.code, headers, body


@pytest_twisted.async_yield_fixture()
async def site_rig():
    r = await start_rig(sla=20, sla_target=90.0)
    yield r
    await r.stop()


@pytest_twisted.ensureDeferred
async def test_page_and_assets_are_served_with_a_strict_policy(site_rig):
    base = site_rig.url
    code, headers, body = await get(base)
    assert code == 200 and headers["content-type"].startswith("text/html")
    assert b'<div id="app">' in body
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    for path, ctype in [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
        ("vendor/vue.global.prod.js", "text/javascript"),
        ("vendor/bootstrap.min.css", "text/css"),
    ]:
        code, headers, body = await get(base + path)
        assert code == 200, path
        assert headers["content-type"].startswith(ctype), (path, headers["content-type"])
        assert body
    # Every file the page references is served (no CDN, nothing missing).
    _, _, page = await get(base)
    for ref in ["vendor/bootstrap.min.css", "app.css", "vendor/vue.global.prod.js", "live.js", "app.js", "favicon.svg"]:
        assert f'"{ref}"'.encode() in page


@pytest.mark.parametrize(
    "path",
    [
        "node_modules/vue/package.json",
        "node_modules/",
        "package.json",
        "package-lock.json",
        "vendor/",
        "vendor/vue.global.js",
        "app.js/x",
        "../setup.cfg",
        "%2e%2e/setup.cfg",
    ],
)
@pytest_twisted.ensureDeferred
async def test_nothing_else_is_reachable(site_rig, path):
    code, _, _ = await get(site_rig.url + path)
    assert code == 404


@pytest_twisted.ensureDeferred
async def test_config_json_carries_the_sla_settings(site_rig):
    code, headers, body = await get(site_rig.url + "config.json")
    assert code == 200 and headers["content-type"] == "application/json"
    config = json.loads(body)
    assert config["sla"] == 20 and config["sla_target"] == 90.0
    assert abs(config["now"] - reactor.seconds()) < 60


@pytest_twisted.ensureDeferred
async def test_plain_get_on_the_websocket_path_is_not_an_upgrade(site_rig):
    # Autobahn's status page (with its ?redirect= open redirect) is off.
    with pytest.raises(PartialDownloadError) as e:
        await get(site_rig.url + "callcenter?redirect=http%3A%2F%2Fevil.example")
    assert e.value.status == b"426"


def test_missing_npm_packages_are_named(tmp_path, fake_center):
    for name in ("index.html", "login.html", "app.js", "app.css"):
        shutil.copy(os.path.join(STATIC_DIR, name), tmp_path / name)
    with pytest.raises(MissingAssets, match=r"vue\.global\.prod\.js.*npm ci"):
        make_site(fake_center, static_dir=str(tmp_path), reactor=reactor)
    os.remove(tmp_path / "index.html")
    with pytest.raises(MissingAssets, match="index.html"):
        make_site(fake_center, static_dir=str(tmp_path), reactor=reactor)


def test_bad_allowed_origin_is_refused(fake_center):
    with pytest.raises(ValueError, match="not scheme://host"):
        make_site(fake_center, static_dir=STATIC_DIR, reactor=reactor, allowed_origins=["wall.example.com"])


def test_both_pages_share_one_server_link():
    # live.js alone opens the WebSocket (HELLO, reconnects, config.json); the
    # dashboard and the agent page each load it before their own script.
    scripts = sorted(n for n in os.listdir(STATIC_DIR) if n.endswith(".js"))
    openers = [n for n in scripts if "new WebSocket(" in open(os.path.join(STATIC_DIR, n)).read()]
    assert openers == ["live.js"]
    for page, script in (("index.html", "app.js"), ("agent.html", "agent.js")):
        with open(os.path.join(STATIC_DIR, page)) as f:
            html = f.read()
        assert html.index('src="live.js"') < html.index(f'src="{script}"'), page
