"""``--metrics-listen`` in the real service tree: /metrics on its own loopback
port, with the link figures of a running service (simulated PBX, a real
redis-server of the test's own)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from core.test_service_process import free_port
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.python import usage
from twisted.web.client import Agent, readBody

from callcenter.options import Options
from callcenter.service import CallcenterService


async def get(url: str) -> tuple[int, bytes]:
    response = await Agent(reactor).request(b"GET", url.encode())
    return response.code, await readBody(response)


def values(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + "".join(f",{k}={v}" for k, v in sorted(s.labels.items()))
            out[key] = s.value
    return out


@pytest_twisted.ensureDeferred
async def test_metrics_endpoint_of_a_running_service(tmp_path: Path, redis_server) -> None:
    opts = Options()
    opts.parseOptions([
        "--simulate", "--sim-agents", "3", "--sim-calls-per-minute", "600",
        "--report", str(tmp_path / "report.csv"), "--redis", redis_server.url,
        "--listen", "tcp:0:interface=127.0.0.1",
        "--metrics-listen", "tcp:0:interface=127.0.0.1",
    ])
    svc = CallcenterService(opts, reactor)
    assert [s.name for s in svc][-2:] == ["metrics-web", "systemd"]  # READY=1 after its port opens
    svc.privilegedStartService()
    svc.startService()
    try:
        await svc.ready
        port = svc.metrics_web.watcher.port.getHost().port
        base = f"http://127.0.0.1:{port}"
        got: dict[str, float] = {}
        for _ in range(400):
            code, body = await get(base + "/metrics")
            assert code == 200
            got = values(body.decode())
            if got.get("callcenter_ami_synced") == 1 and got.get("callcenter_report_lines_written_total", 0) > 0 \
                    and sum(v for k, v in got.items() if k.startswith("callcenter_calls_received_total")) > 0 \
                    and got.get("callcenter_redis_write_latency_seconds_count", 0) > 0:
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert got["callcenter_ami_connected"] == 1
        assert got["callcenter_ami_synced"] == 1 and svc.health.pbx_ready
        assert got["callcenter_ami_logins_total"] == 1 and got["callcenter_ami_reconnects_total"] == 0
        assert got["callcenter_ami_events_total,event=QueueCallerJoin"] >= 1
        assert got["callcenter_redis_up"] == 1
        assert got["callcenter_redis_write_latency_seconds_count"] > 0
        assert got["callcenter_report_lines_written_total"] > 0
        assert got["callcenter_dashboards_connected"] == 0
        assert got["callcenter_dashboards_dropped_slow_total"] == 0
        code, _ = await get(base + "/")
        assert code == 404  # only /metrics; the dashboard is not on this port
        # The dashboard port does not serve the metrics.
        web = svc.web.watcher.port.getHost().port
        code, body = await get(f"http://127.0.0.1:{web}/metrics")
        assert b"callcenter_ami_connected" not in body
    finally:
        await svc.stopService()


def test_metrics_listen_is_off_by_default_and_checked(tmp_path: Path) -> None:
    opts = Options()
    opts.parseOptions(["--simulate", "--report", str(tmp_path / "r.csv"),
                       "--redis", f"redis://127.0.0.1:{free_port()}/0"])
    svc = CallcenterService(opts, reactor)
    assert svc.metrics_web is None and "metrics-web" not in [s.name for s in svc]
    opts = Options()
    opts.parseOptions(["--simulate", "--report", str(tmp_path / "r.csv"),
                       "--metrics-listen", "nonsense:1"])
    with pytest.raises(usage.UsageError, match="--metrics-listen"):
        CallcenterService(opts, reactor)
