"""``--redis`` URLs, and rediss:// against a real TLS redis-server."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor

from callcenter.store.redis_store import UP, RedisStore
from callcenter.store.redis_url import RedisURL, parse_redis_url

from . import events as ev
from .conftest import RedisServer, free_port
from .support import Rig, assert_redis_is


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6380/2", RedisURL("127.0.0.1", 6380, 2)),
        ("redis://localhost", RedisURL("localhost", 6379, 0)),
        ("redis://:s%40cret@redis.example:7000/1", RedisURL("redis.example", 7000, 1, "s@cret")),
        ("redis://app:pw@h/0", RedisURL("h", 6379, 0, "pw", "app")),
        ("rediss://h:6390/0", RedisURL("h", 6390, 0, tls=True)),
        (
            "rediss://[::1]:6390/0?ssl_ca_certs=/ca.pem",
            RedisURL("::1", 6390, 0, tls=True, ca_certs="/ca.pem"),
        ),
    ],
)
def test_parse(url, expected):
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://h:1/0", "must look like"),
        ("redis://:pw@h:port/0", "bad host or port"),
        ("redis://h:1/x", "database must be a number"),
        ("redis:///0", "no host"),
        ("redis://h/0?ssl_ca_certs=/x", "rediss://"),
        ("rediss://h/0?ssl_certfile=/x", "both ssl_certfile and ssl_keyfile"),
        ("redis://h/0?timeout=3", "unknown URL parameter"),
    ],
)
def test_bad_urls(url, why):
    with pytest.raises(ValueError, match=why) as e:
        parse_redis_url(url)
    assert "pw" not in str(e.value)


def test_str_masks_the_password():
    assert str(parse_redis_url("redis://:hunter2@h:1/3")) == "redis://:***@h:1/3"
    assert str(parse_redis_url("rediss://u:hunter2@[::1]:1/3")) == "rediss://u:***@[::1]:1/3"


# ---------------------------------------------------------------------- TLS


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, key, issuer_key, issuer: str, ca: bool, san: list | None = None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert=None, key=None) -> str:
    data = b""
    if cert is not None:
        data += cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        data += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test CA", ca_key, ca_key, "test CA", ca=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _issue("other CA", other_key, other_key, "other CA", ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _issue("localhost", server_key, ca_key, "test CA", ca=False, san=san)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("callcenter", client_key, ca_key, "test CA", ca=False)
    return {
        "ca": _write(tmp_path / "ca.pem", ca),
        "other": _write(tmp_path / "other.pem", other),
        "server_cert": _write(tmp_path / "server.crt", server),
        "server_key": _write(tmp_path / "server.key", key=server_key),
        "client_cert": _write(tmp_path / "client.crt", client),
        "client_key": _write(tmp_path / "client.key", key=client_key),
    }


@pytest.fixture
def tls_redis(tmp_path: Path, pki):
    tls_port = free_port()
    server = RedisServer(
        tmp_path,
        extra=(
            "--tls-port",
            str(tls_port),
            "--tls-cert-file",
            pki["server_cert"],
            "--tls-key-file",
            pki["server_key"],
            "--tls-ca-cert-file",
            pki["ca"],
            "--tls-auth-clients",
            "optional",
        ),
    )
    server.start()
    server.tls_port = tls_port
    try:
        yield server
    finally:
        server.stop()


@pytest_twisted.ensureDeferred
async def test_rediss_verifies_the_server_and_works(tls_redis, pki, logs):
    url = f"rediss://127.0.0.1:{tls_redis.tls_port}/0?ssl_ca_certs={pki['ca']}"
    rig = Rig(1795665000.0)
    store = RedisStore(reactor, url, "callcenter:", rig.center)
    await store.load()
    store.start()
    assert store.state == UP
    rig.feed([ev.member_added(1795665001.0, "1001"), ev.join(1795665002.0, "c1")])
    await store.flush()
    assert store.transactions >= 2
    assert_redis_is(tls_redis, rig.center)  # read back over the plain port
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_rediss_with_a_client_certificate(tls_redis, pki):
    tls_redis.command("CONFIG", "SET", "tls-auth-clients", "yes")
    url = (
        f"rediss://127.0.0.1:{tls_redis.tls_port}/0?ssl_ca_certs={pki['ca']}"
        f"&ssl_certfile={pki['client_cert']}&ssl_keyfile={pki['client_key']}"
    )
    rig = Rig(1795665000.0)
    store = RedisStore(reactor, url, "callcenter:", rig.center)
    await store.load()
    assert store.state == UP
    await store.stop()


@pytest_twisted.ensureDeferred
async def test_rediss_refuses_an_untrusted_server(tls_redis, pki, logs):
    url = f"rediss://127.0.0.1:{tls_redis.tls_port}/0?ssl_ca_certs={pki['other']}"
    rig = Rig(1795665000.0)
    store = RedisStore(reactor, url, "callcenter:", rig.center)
    await store.load()
    assert store.state != UP
    lines = logs.matching("not available")
    assert len(lines) == 1 and "rediss://127.0.0.1" in lines[0], lines
    assert "certificate verify failed" in lines[0]
    await store.stop()


def test_unreadable_ca_file_is_one_clear_error(tmp_path):
    rig = Rig(1795665000.0)
    with pytest.raises(ValueError, match="cannot read"):
        RedisStore(reactor, f"rediss://h:1/0?ssl_ca_certs={tmp_path}/nope.pem", "p:", rig.center)
