"""The service tree: children start one after the other, each once the one
before it is ready (report, Redis store, simulator, AMI link, dashboard),
and stop the other way round."""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from twisted.application import service
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from callcenter.service import CallcenterService, Options, StartInOrder

from .test_service_process import free_port


class Recorder(service.Service):
    def __init__(self, name: str, log: list[str], ready: defer.Deferred | None = None) -> None:
        self.name = name
        self.log = log
        self._ready = ready

    def startService(self) -> None:
        super().startService()
        self.log.append("start " + self.name)

    def whenReady(self) -> defer.Deferred:
        return self._ready if self._ready is not None else defer.succeed(None)

    def stopService(self) -> None:
        super().stopService()
        self.log.append("stop " + self.name)


def test_start_in_order_waits_for_each_child() -> None:
    log: list[str] = []
    gate: defer.Deferred = defer.Deferred()
    root = StartInOrder()
    for child in (Recorder("a", log), Recorder("b", log, gate), Recorder("c", log)):
        child.setServiceParent(root)
    root.privilegedStartService()
    root.startService()
    assert log == ["start a", "start b"] and not root.ready.called
    gate.callback(None)
    assert log == ["start a", "start b", "start c"] and root.ready.called
    root.stopService()
    assert log[3:] == ["stop c", "stop b", "stop a"]


def test_a_child_that_fails_stops_the_start_and_only_started_ones_stop() -> None:
    log: list[str] = []
    root = StartInOrder()
    Recorder("a", log, defer.fail(RuntimeError("no"))).setServiceParent(root)
    Recorder("b", log).setServiceParent(root)
    root.startService()
    failures: list = []
    root.ready.addErrback(failures.append)
    assert log == ["start a"] and failures
    root.stopService()
    assert log == ["start a", "stop a"]


@pytest_twisted.ensureDeferred
async def test_the_real_tree_serves_the_simulated_pbx(tmp_path: Path) -> None:
    opts = Options()
    opts.parseOptions([
        "--simulate", "--sim-agents", "3", "--report", str(tmp_path / "report.csv"),
        "--redis", f"redis://127.0.0.1:{free_port()}/0",  # down: logged, state in memory
        "--listen", "tcp:0:interface=127.0.0.1",
    ])
    svc = CallcenterService(opts, reactor)
    assert [s.name for s in svc] == ["report", "store", "metrics", "simulator", "pbx", "access", "web", "systemd"]
    svc.privilegedStartService()
    assert svc.web.watcher.port is None  # nothing binds before its turn
    svc.startService()
    try:
        await svc.ready
        assert svc.web.watcher.port is not None
        for _ in range(300):
            if svc.center.resyncer.completed and svc.center.agents:
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert svc.center.resyncer.completed >= 1 and svc.center.agents
    finally:
        await svc.stopService()
    assert not svc.ami.running and not svc.running
