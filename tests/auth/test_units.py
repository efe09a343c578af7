"""Throttle, role views and the wiring's refusals, without sockets (Clock for time)."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from callcenter.auth.roles import (
    GONE,
    HIDE,
    SHOW,
    Admin,
    Agent,
    Item,
    Supervisor,
    Wallboard,
    scoped_stats,
)
from callcenter.auth.throttle import LoginThrottle
from callcenter.kpi import Counters, kpi_view
from callcenter.options import Options
from callcenter.web.wiring import AccessConfigError, check_exposure, is_loopback_listen, make_access


def test_throttle_locks_after_n_failures_until_the_window_passes():
    clock = Clock()
    t = LoginThrottle(clock, user_limit=3, address_limit=100, window=60)
    for _ in range(3):
        assert t.retry_after("sue", "10.0.0.1") == 0
        t.failed("sue", "10.0.0.1")
    assert t.retry_after("sue", "10.0.0.9") == 60  # locked by name from any address
    clock.advance(59.5)
    assert t.retry_after("sue", "10.0.0.1") == pytest.approx(0.5)
    clock.advance(0.5)
    assert t.retry_after("sue", "10.0.0.1") == 0


def test_throttle_per_address_and_success_clears_only_the_user():
    clock = Clock()
    t = LoginThrottle(clock, user_limit=100, address_limit=3, window=60)
    for name in ("a", "b", "c"):
        t.failed(name, "10.0.0.1")
    assert t.retry_after("d", "10.0.0.1") > 0  # a guesser trying many names
    assert t.retry_after("d", "10.0.0.2") == 0
    t.succeeded("a")
    assert t.retry_after("a", "10.0.0.1") > 0


def test_throttle_table_is_bounded():
    t = LoginThrottle(Clock(), user_limit=1, address_limit=1000, window=60, size=100)
    for i in range(10_000):
        t.failed(f"user{i}", "10.0.0.1")
    assert len(t) <= 100
    assert t.retry_after("user9999", "10.0.0.2") > 0  # the most recent are kept


def item(kind, queues, was=(), agent=""):
    return Item(kind, "x", agent, frozenset(queues), frozenset(was))


def test_views():
    sam = Supervisor("sam", frozenset({"q-sales"}))
    assert sam.sees(item("CALL", ["q-sales"])) == SHOW
    assert sam.sees(item("CALL", ["q-support"])) == HIDE
    assert sam.sees(item("AGENT", [], was=["q-sales"])) == GONE
    assert sam.sees(item("AGENT", ["q-support", "q-sales"])) == SHOW
    assert sam.may_command("1", frozenset({"q-sales"})) and not sam.may_command("1", frozenset({"q-x"}))
    ann = Agent("ann", "1001")
    assert ann.sees(item("AGENT", ["q"], agent="1001")) == SHOW
    assert ann.sees(item("AGENT", ["q"], agent="1002")) == HIDE
    assert ann.sees(item("CONNECT", ["q"], agent="1001")) == SHOW
    assert ann.sees(item("CALL", ["q"])) == HIDE
    assert ann.may_command("1001", frozenset()) and not ann.may_command("1002", frozenset({"q"}))
    assert not Wallboard("tv").may_command("1001", frozenset({"q"}))
    assert Admin("root").everything and Wallboard("tv").everything and not sam.everything
    assert Supervisor("sue").view_key == Admin("root").view_key  # one shared frame


def _queue_view(c: Counters, **live) -> dict:
    return {**kpi_view(c), "agents_online": 0, "calls_online": 0, "connections_online": 0,
            "calls_waiting": 0, "longest_wait": 0, **live}


def test_scoped_stats_against_the_kpi_of_the_summed_counters():
    sales = Counters(received=10, answered=8, abandoned=2, completed=8, hold_answered=80,
                     hold_abandoned=30, talk_completed=800, answered_in_sla=6, abandoned_in_sla=1)
    north = Counters(received=5, answered=4, abandoned=1, completed=4, hold_answered=8,
                     hold_abandoned=5, talk_completed=200, answered_in_sla=4, abandoned_in_sla=1)
    other = Counters(received=99, answered=1, abandoned=98)
    stats = {"type": "STATS", "day": "2026-12-01", "sla_seconds": 10, "calls_received": 114,
             "queues": {"sales": _queue_view(sales, calls_waiting=2, longest_wait=40),
                        "north": _queue_view(north, calls_waiting=1, longest_wait=70),
                        "other": _queue_view(other, calls_waiting=9, longest_wait=900)}}
    one = scoped_stats(stats, frozenset({"sales"}))
    assert list(one["queues"]) == ["sales"]
    for key, value in kpi_view(sales).items():
        assert one[key] == value, key
    both = scoped_stats(stats, frozenset({"sales", "north"}))
    total = Counters()
    total.add(sales)
    total.add(north)
    exact = kpi_view(total)
    for key in ("calls_received", "calls_answered", "calls_abandoned", "abandon_rate"):
        assert both[key] == exact[key], key
    for key in ("average_queue_time", "average_abandoned_time", "average_handle_time"):
        assert abs(both[key] - exact[key]) <= 1, key
    for key in ("sla", "sla_with_abandoned"):
        assert abs(both[key] - exact[key]) < 0.5, key
    assert both["calls_waiting"] == 3 and both["longest_wait"] == 70
    assert "other" not in both["queues"]


def opts(tmp_path, *args):
    o = Options(environ={})
    o.parseOptions(["--simulate", "--report", str(tmp_path / "r.csv"), *args])
    return o


def test_no_users_on_a_public_address_refuses_to_start(tmp_path):
    from twisted.python import usage

    with pytest.raises(usage.UsageError) as e:
        opts(tmp_path, "--listen", "tcp:8080", "--public-url", "https://cc.example.com")
    assert "\n" not in str(e.value) and "no --users" in str(e.value)
    with pytest.raises(AccessConfigError, match="give --public-url"):
        check_exposure("tcp:8080:interface=10.1.2.3", "/etc/callcenter/users", [])


def test_no_users_on_loopback_runs_open_with_one_warning(tmp_path, logs):
    parts = make_access(opts(tmp_path, "--listen", "tcp:8080:interface=127.0.0.1"), None)
    assert parts.access.open
    assert len(logs.matching("no --users")) == 1


@pytest.mark.parametrize("listen,loop", [
    ("tcp:8080:interface=127.0.0.1", True), (r"tcp6:8080:interface=\:\:1", True),
    ("tcp:8080", False), ("tcp:8080:interface=0.0.0.0", False), ("ssl:443:interface=10.0.0.1", False),
    ("unix:/run/cc.sock", False), ("tcp:8080:interface=localhost", True),
])
def test_loopback_listen(listen, loop):
    assert is_loopback_listen(listen) is loop


def test_option_checks(tmp_path):
    from twisted.python import usage

    for bad in (["--public-url", "cc.example.com"], ["--session-idle", "0"],
                ["--trusted-proxy-header", "X-User"],
                ["--users", "u", "--trusted-proxy-header", "X-User"],
                ["--trusted-proxies", "10.0.0.300"], ["--login-attempts-user", "-1"]):
        with pytest.raises(usage.UsageError):
            opts(tmp_path, *bad)


class _Req:
    def __init__(self, secure: bool) -> None:
        self.secure = secure

    def isSecure(self) -> bool:  # noqa: N802 - twisted.web's name
        return self.secure


def test_cookie_is_secure_over_tls_or_behind_an_https_public_url():
    from callcenter.web.access import Access
    from callcenter.web.origin import OriginPolicy

    plain = Access(None, clock=Clock(), origins=OriginPolicy(), open_access=False)
    assert "Secure" not in plain.cookie_header(_Req(False), "x").decode()
    assert "; Secure" in plain.cookie_header(_Req(True), "x").decode()
    proxied = Access(None, clock=Clock(), origins=OriginPolicy(["https://cc.example.com"]), open_access=False)
    header = proxied.cookie_header(_Req(False), "x").decode()
    assert header.startswith("callcenter_session=x;") and "; Secure" in header
    assert "HttpOnly" in header and "SameSite=Strict" in header


@pytest_twisted.ensureDeferred
async def test_password_checks_are_bounded(tmp_path):
    from twisted.cred.credentials import UsernamePassword
    from twisted.internet import defer, reactor

    from callcenter.auth.checkers import LoginBusy, UsersFileChecker
    from callcenter.auth.source import UsersSource

    from .support import PASSWORD, user_line, write_users

    path = str(tmp_path / "users")
    write_users(path, user_line("sue", "supervisor"))
    checker = UsersFileChecker(UsersSource(path, Clock(), 0), reactor, concurrency=1, queue=1)
    creds = UsernamePassword(b"sue", PASSWORD.encode())
    first, second = checker.requestAvatarId(creds), checker.requestAvatarId(creds)
    with pytest.raises(LoginBusy):
        await checker.requestAvatarId(creds)  # a third while one runs and one waits
    assert await defer.gatherResults([first, second]) == [b"sue", b"sue"]
