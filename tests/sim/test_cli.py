"""``start_simulator`` on the real reactor over loopback TCP, and the CLI options."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.python import usage

from callcenter.ami.message import Splitter, format_action, parse_message
from callcenter.simulator import cli, start_simulator


class Client(protocol.Protocol):
    def __init__(self) -> None:
        self.splitter = Splitter()
        self.messages = []
        self.waiters: list[tuple[object, defer.Deferred]] = []
        self.closed: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        for block in self.splitter.feed(data):
            self.messages.append(parse_message(block))
        for pred, d in list(self.waiters):
            if any(pred(m) for m in self.messages):
                self.waiters.remove((pred, d))
                d.callback(None)

    def connectionLost(self, reason=None) -> None:
        self.closed.callback(None)

    def wait_for(self, pred) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if any(pred(m) for m in self.messages):
            d.callback(None)
        else:
            self.waiters.append((pred, d))
        return d


@pytest_twisted.inlineCallbacks
def test_start_simulator_over_tcp():
    from twisted.internet import reactor

    clock = task.Clock()  # the model's time: advanced by hand, the sockets are real
    port, pbx = yield start_simulator(reactor, "tcp:0:interface=127.0.0.1", username="admin",
                                      secret="S3", agents=4, calls_per_minute=6.0,
                                      queues=("q-callcenter", "q-support"), seed=5, clock=clock)
    client = Client()
    try:
        ep = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        yield ep.connect(protocol.Factory.forProtocol(lambda: client))
        client.transport.write(format_action("Login", Username="admin", Secret="S3",
                                             ActionID="1"))
        yield client.wait_for(lambda m: m.get("Message") == "Authentication accepted")
        assert client.splitter.banner == "Asterisk Call Manager/11.0.0"
        for _ in range(300):
            clock.advance(0.2)
        yield client.wait_for(lambda m: m.name == "AgentConnect")
        names = {m.name for m in client.messages}
        assert {"QueueMemberAdded", "UserEvent", "QueueCallerJoin", "AgentCalled"} <= names
        client.transport.write(format_action("Logoff", ActionID="bye"))
        yield client.closed
        assert client.messages[-1]["Response"] == "Goodbye"
    finally:
        yield pbx.stop()
    assert not clock.getDelayedCalls()  # stop() leaves nothing scheduled


@pytest_twisted.inlineCallbacks
def test_wrong_secret_over_tcp():
    from twisted.internet import reactor

    port, pbx = yield start_simulator(reactor, "tcp:0:interface=127.0.0.1", username="admin",
                                      secret="right", agents=0, calls_per_minute=0,
                                      auth_fail_delay=0.0)
    client = Client()
    try:
        ep = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        yield ep.connect(protocol.Factory.forProtocol(lambda: client))
        client.transport.write(format_action("Login", Username="admin", Secret="wrong"))
        yield client.closed
        assert [(m["Response"], m["Message"]) for m in client.messages] == [
            ("Error", "Authentication failed")]
    finally:
        yield pbx.stop()


def test_cli_options(tmp_path, monkeypatch):
    monkeypatch.delenv(cli.SECRET_ENV, raising=False)
    opts = cli.Options()
    opts.parseOptions(["--listen", "tcp:0:interface=127.0.0.1", "--username", "admin",
                       "--secret", "S", "--agents", "8", "--calls-per-minute", "4",
                       "--queues", "q-callcenter,q-support", "--seed", "1"])
    assert (opts["agents"], opts["calls-per-minute"], opts["queues"], opts["seed"]) == (
        8, 4.0, ["q-callcenter", "q-support"], 1)
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    opts = cli.Options()
    opts.parseOptions(["--secret-file", str(secret)])
    assert opts["secret"] == "from-file"
    monkeypatch.setenv(cli.SECRET_ENV, "from-env")
    opts = cli.Options()
    opts.parseOptions([])
    assert opts["secret"] == "from-env"
    monkeypatch.delenv(cli.SECRET_ENV)
    monkeypatch.delenv(cli.READ_ENV, raising=False)
    opts = cli.Options()
    opts.parseOptions(["--secret", "S"])
    assert opts["read"] == "agent,call,user"  # the shipped manager.conf user
    opts = cli.Options()
    opts.parseOptions(["--secret", "S", "--read", "all"])
    assert opts["read"] == "all"
    monkeypatch.setenv(cli.READ_ENV, "agent,system")
    opts = cli.Options()
    opts.parseOptions(["--secret", "S"])
    assert opts["read"] == "agent,system"
    monkeypatch.delenv(cli.READ_ENV)
    for bad in (["--secret", "S", "--agents", "x"], ["--secret", "S", "--queues", ","],
                [], ["--secret-file", str(tmp_path / "missing")], ["--secret", "S", "--read", " "]):
        with pytest.raises(usage.UsageError):
            cli.Options().parseOptions(bad)


def test_cli_main_rejects_bad_options(capsys, monkeypatch):
    monkeypatch.delenv(cli.SECRET_ENV, raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.main(["--agents", "-3", "--secret", "S"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("callcenter-pbx-sim: ")


def test_cli_login_spacing_spreads_the_logins():
    opts = cli.Options()
    opts.parseOptions(["--secret", "S"])
    assert opts["login-spacing"] == 0.7  # Behaviour's default: unchanged unless asked
    opts = cli.Options()
    opts.parseOptions(["--secret", "S", "--login-spacing", "0.02"])
    assert opts["login-spacing"] == 0.02
    for bad in ("-1", "x", "nan"):
        with pytest.raises(usage.UsageError):
            cli.Options().parseOptions(["--secret", "S", "--login-spacing", bad])
