"""ops/prometheus/alerts.yml and ops/grafana/callcenter.json: promtool accepts
the rules and their unit tests, and every metric they name is one the
service exports (a scrape after a replayed trace, with every link present)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from core.traces import load
from prometheus_client.parser import text_string_to_metric_families

from .test_metrics_traces import replay_with_metrics, scrape

OPS = Path(__file__).resolve().parents[2] / "ops"
RULES = OPS / "prometheus" / "alerts.yml"
DASHBOARD = OPS / "grafana" / "callcenter.json"
METRIC = re.compile(r"\b(callcenter_[a-z0-9_]+|up)\b")
# Series Prometheus makes itself for every target (not exported by the service).
PROMETHEUS_OWN = {"up"}


def exported_names() -> set[str]:
    out, _ = replay_with_metrics(load("queue-entries/transfer-small"))
    from callcenter.metrics.service import make_registry

    registry, figures, links = make_registry(out.center)
    figures.start()
    links.ami = SimpleNamespace(connected=True)
    links.store = SimpleNamespace(state="up")
    links.dashboards = SimpleNamespace(clients=[], dropped_slow=0)
    links.report = SimpleNamespace(lines_written=0, failing=False)
    for name in ("QueueCallerJoin",):
        links.events[name] = 1
    names = set()
    text = scrape(registry)
    for family in text_string_to_metric_families(text):
        names.update(s.name for s in family.samples)
    # A histogram family always exposes these three, observed or not.
    for family in text_string_to_metric_families(text):
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def metrics_in(expr: str) -> set[str]:
    # Label values and strings are not metric names.
    bare = re.sub(r'"[^"]*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "{}", bare)
    return set(METRIC.findall(bare))


def test_alert_rules_structure_and_metric_names() -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert all(set(g) == {"name", "rules"} for g in doc["groups"])
    names = {r["alert"] for r in rules}
    assert {"CallcenterPbxLinkDown", "CallcenterSlaBelowTarget", "CallcenterCallsWaiting",
            "CallcenterLongestWait", "CallcenterRedisDown", "CallcenterServiceDown",
            "CallcenterServiceAbsent"} <= names
    pbx = next(r for r in rules if r["alert"] == "CallcenterPbxLinkDown")
    assert pbx["for"] == "30s"
    exported = exported_names()
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning")
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        assert metrics_in(r["expr"]) <= exported | PROMETHEUS_OWN, (r["alert"], metrics_in(r["expr"]) - exported)


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed (Debian package prometheus: scripts/setup-system.sh promtool)")
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 8 rules found" in check.stdout
    unit = subprocess.run(["promtool", "test", "rules", "alerts.test.yml"], cwd=RULES.parent,
                          capture_output=True, text=True, timeout=60)
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_grafana_dashboard_shape_and_metric_names() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "queue"} <= variables
    exported = exported_names()
    ids, referenced = set(), set()
    panels = dash["panels"]
    assert panels
    for p in panels:
        assert p["id"] not in ids
        ids.add(p["id"])
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] == "row":
            continue
        assert p["type"] in ("stat", "timeseries", "gauge", "table") and p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["refId"] and t["expr"]
            used = metrics_in(t["expr"])
            assert used, (p["title"], t["expr"])
            assert used <= exported | PROMETHEUS_OWN, (p["title"], used - exported)
            referenced |= used
    # The dashboard covers the queue gauges, the call counters and the links.
    assert {"callcenter_queue_calls_waiting", "callcenter_calls_received_total",
            "callcenter_hold_seconds_bucket", "callcenter_ami_connected",
            "callcenter_redis_up"} <= referenced
