"""Host and Origin on loopback and behind --public-url: DNS rebinding and
cross-site WebSocket hijacking are refused, the service's own page is not."""

from __future__ import annotations

import pytest
import pytest_twisted

from callcenter.web.origin import OriginPolicy

from .support import HandshakeRefused, raw_request, start_rig, upgrade_request


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest_twisted.ensureDeferred
async def test_handshakes_that_are_refused(rig):
    port = rig.portno
    cases = {
        "no Origin": (None, None),
        "foreign Origin": ("http://evil.example", None),
        "same host, other port": ("http://127.0.0.1:1", None),
        "Origin and Host both foreign (DNS rebinding)": (f"http://evil.example:{port}", f"evil.example:{port}"),
        "wrong scheme": (f"https://127.0.0.1:{port}", None),
        "ws scheme is not a page's": (f"ws://127.0.0.1:{port}", None),
        "null": ("null", None),
    }
    for what, (origin, host) in cases.items():
        answer = await raw_request(port, upgrade_request(port, origin, host))
        assert status(answer) in (400, 403, 421), (what, answer[:80])  # 400: Autobahn refuses "null" itself
    assert status(await raw_request(port, upgrade_request(port, f"http://evil.example:{port}",
                                                          f"evil.example:{port}"))) == 421
    with pytest.raises(HandshakeRefused):
        await rig.client(origin="http://evil.example")
    assert rig.site.dashboards.clients == []


@pytest_twisted.ensureDeferred
async def test_own_origin_is_accepted(rig):
    port = rig.portno
    for origin, host in [
        (f"http://127.0.0.1:{port}", None),
        (f"http://LOCALHOST:{port}", f"localhost:{port}"),
    ]:
        answer = await raw_request(port, upgrade_request(port, origin, host))
        assert status(answer) == 101, answer[:80]
    c = await rig.client()
    assert (await c.hello())[1]["type"] == "STATS"  # after CONFIG


@pytest_twisted.ensureDeferred
async def test_plain_http_with_a_foreign_host_gets_421(rig):
    port = rig.portno
    for host in ["evil.example", f"evil.example:{port}", "10.0.0.1:80", ""]:
        answer = await raw_request(port, f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert status(answer) == 421, (host, answer[:80])
    answer = await raw_request(port, f"GET /app.js HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert status(answer) == 200


@pytest_twisted.ensureDeferred
async def test_behind_a_proxy_only_the_public_url_is_ours():
    rig = await start_rig(public_urls=["https://cc.example.com"], allowed_origins=["https://wall.example.com"])
    try:
        port = rig.portno
        ok = [
            ("https://cc.example.com", "cc.example.com"),  # nginx: Host $host, TLS ended there
            ("https://cc.example.com", "cc.example.com:443"),
            ("https://wall.example.com", "cc.example.com"),  # an extra allowed origin
        ]
        for origin, host in ok:
            assert status(await raw_request(port, upgrade_request(port, origin, host))) == 101, (origin, host)
        refused = [
            ("http://cc.example.com", "cc.example.com"),  # wrong scheme
            ("https://cc.example.com:8443", "cc.example.com"),
            (None, "cc.example.com"),
            ("https://evil.example", "cc.example.com"),
            ("https://cc.example.com", f"127.0.0.1:{port}"),  # not our public name
            ("https://evil.example", "evil.example"),
        ]
        for origin, host in refused:
            assert status(await raw_request(port, upgrade_request(port, origin, host))) in (403, 421), (origin, host)
        answer = await raw_request(port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert status(answer) == 421
    finally:
        await rig.stop()


@pytest.mark.parametrize(
    "origin,host,secure,ok",
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080", False, True),
        ("http://[::1]:8080", "[::1]:8080", False, True),
        ("https://127.0.0.1:8443", "127.0.0.1:8443", True, True),
        ("http://127.0.0.1:8443", "127.0.0.1:8443", True, False),
        ("http://127.0.0.1:8081", "127.0.0.1:8080", False, False),
        ("http://127.0.0.1.evil.net:8080", "127.0.0.1.evil.net:8080", False, False),
        (None, "127.0.0.1:8080", False, False),
        ("file://", "127.0.0.1:8080", False, False),
        ("http://127.0.0.1:8080/path", "127.0.0.1:8080", False, False),
        ("http://127.0.0.1:8080", None, False, False),
    ],
)
def test_loopback_policy(origin, host, secure, ok):
    assert OriginPolicy().origin_allowed(origin, host, secure) is ok


def test_public_url_values_are_checked():
    for bad in ["cc.example.com", "ftp://cc.example.com", "https://cc.example.com/dash", "https://"]:
        with pytest.raises(ValueError):
            OriginPolicy([bad])
    with pytest.raises(ValueError):
        OriginPolicy(allowed=["*"])
