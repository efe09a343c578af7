"""systemd's notify protocol (issue 13) against a fake NOTIFY_SOCKET: a
datagram socket the test binds, read as systemd would (sd_notify(3))."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.logger import globalLogPublisher

from callcenter.health import Health
from callcenter.service import CallcenterService, Options
from callcenter.systemd import Notifier, NotifyService, watchdog_interval

from .test_service_tree import free_port


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, address: str) -> None:
        self.address = address  # as it goes in $NOTIFY_SOCKET
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setblocking(False)
        self.messages: list[list[str]] = []

    def read(self) -> list[list[str]]:
        """The datagrams that came since the last read (``messages``: all of them)."""
        new = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                self.messages.extend(new)
                return new
            new.append(data.decode().split("\n"))

    def fields(self) -> list[str]:
        return [line for m in self.read() for line in m]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(str(tmp_path / "notify"))
    yield fake
    fake.close()


def test_notifier_path_and_abstract_sockets(systemd: FakeSystemd) -> None:
    n = Notifier(systemd.address)
    assert n.notify("READY=1", "STATUS=two\nlines")
    assert systemd.read() == [["READY=1", "STATUS=two lines"]]
    n.close()
    abstract = FakeSystemd(f"@callcenter-test-{secrets.token_hex(6)}")
    try:
        n = Notifier(abstract.address)
        assert n.notify("WATCHDOG=1")
        assert abstract.read() == [["WATCHDOG=1"]]
        n.close()
    finally:
        abstract.close()


def test_no_socket_no_systemd() -> None:
    n = Notifier(None)
    assert not n.enabled and not n.notify("READY=1")


def test_a_gone_socket_is_one_warning_not_a_crash(tmp_path: Path) -> None:
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        n = Notifier(str(tmp_path / "nobody"))
        assert not n.notify("WATCHDOG=1") and not n.notify("WATCHDOG=1")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert len([e for e in events if "refused a message" in e.get("log_format", "")]) == 1


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "41"}, 42) is None
    assert watchdog_interval({}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}, 42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 42) is None


def test_ready_after_the_first_reconcile_and_watchdog_pings(systemd: FakeSystemd) -> None:
    clock = Clock()
    health = Health(clock)
    env = {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "2000000"}
    svc = NotifyService(clock, health, ready_timeout=60, environ=env)
    svc.startService()
    first = systemd.fields()
    assert "WATCHDOG=1" in first and "READY=1" not in first
    assert [f for f in first if f.startswith("STATUS=")] == [
        f"STATUS=PBX link down since {_hms(health.pbx.since)} (not connected yet); "
        "Redis down (not connected yet): state not being saved"]
    for _ in range(3):
        clock.advance(1.0)  # every WATCHDOG_USEC / 2
    assert systemd.fields().count("WATCHDOG=1") == 3

    health.pbx_logged_in()
    assert "READY=1" not in systemd.fields()  # logged in is not reconciled
    health.store_state(True)
    health.pbx_reconciled()
    out = systemd.fields()
    assert out.count("READY=1") == 1
    assert f"STATUS=PBX link up since {_hms(health.pbx.since)}; Redis up" in out
    health.pbx_lost()
    health.pbx_logged_in()
    health.pbx_reconciled()
    assert "READY=1" not in systemd.fields()  # once per start
    clock.advance(60)
    assert "READY=1" not in systemd.fields()  # the start-up bound was cancelled
    svc.stopService()
    assert "STOPPING=1" in systemd.fields()
    clock.advance(5)
    assert systemd.fields() == []  # no pings after stop


def test_ready_after_the_start_up_bound_with_the_pbx_down(systemd: FakeSystemd) -> None:
    clock = Clock()
    health = Health(clock)
    svc = NotifyService(clock, health, ready_timeout=20, environ={"NOTIFY_SOCKET": systemd.address})
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        svc.startService()
        health.pbx_failed("connection refused")
        clock.advance(19.9)
        assert "READY=1" not in systemd.fields()
        clock.advance(0.1)
        assert "READY=1" in systemd.fields()
    finally:
        globalLogPublisher.removeObserver(events.append)
        svc.stopService()
    warned = [e for e in events if "without a reconciled PBX link" in e.get("log_format", "")]
    assert len(warned) == 1 and warned[0]["why"] == "connection refused"


@pytest_twisted.ensureDeferred
async def test_the_real_tree_says_ready_after_reconcile(tmp_path: Path, systemd: FakeSystemd,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.address)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    opts = Options()
    opts.parseOptions([
        "--simulate", "--sim-agents", "2", "--report", str(tmp_path / "report.csv"),
        "--redis", f"redis://127.0.0.1:{free_port()}/0",  # down: shown in STATUS=
        "--listen", "tcp:0:interface=127.0.0.1",
    ])
    svc = CallcenterService(opts, reactor)
    svc.startService()
    try:
        await svc.ready
        reconciled_at_ready = None
        for _ in range(200):
            if "READY=1" in systemd.fields() and reconciled_at_ready is None:
                reconciled_at_ready = svc.center.resyncer.completed
            fields = [f for m in systemd.messages for f in m]
            if reconciled_at_ready is not None and fields.count("WATCHDOG=1") >= 3:
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert reconciled_at_ready is not None and reconciled_at_ready >= 1, fields
        assert fields.count("READY=1") == 1
        assert fields.count("WATCHDOG=1") >= 3
        status = [f for f in fields if f.startswith("STATUS=PBX link up since")]
        assert status and "Redis down" in status[-1]
    finally:
        await svc.stopService()
    assert "STOPPING=1" in systemd.fields()


def _hms(t: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(t))
