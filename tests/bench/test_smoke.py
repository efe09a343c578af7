"""Each benchmark runs end to end at a tiny size and prints what it measured.

The benchmarks themselves run by hand (``make bench``); these only prove that
the scripts still work against the current code (no figure is asserted).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


NEEDS_PAGE = pytest.mark.skipif(
    not (ROOT / "static" / "node_modules").is_dir(),
    reason="the dashboard site needs the page's libraries: cd static && npm ci")


def _run(script: str, *args: str, timeout: float = 240) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    return proc.stdout


def test_ami_throughput():
    out = _run("ami_throughput.py", "--repeat", "2", "--runs", "1", "--stages")
    assert "$ .venv/bin/python benchmarks/ami_throughput.py --repeat 2 --runs 1 --stages" in out
    for figure in ("(a) stream events/s", "(b) state events/s", "(c) parse every header",
                   "skip unwanted", "up to read", "up to report, no fsync"):
        assert figure in out


def test_redis_state():
    out = _run("redis_state.py", "--events", "30", "--rounds", "1", "--sizes", "5,10")
    assert "p99 of the write cost" in out and "restore at start" in out


@NEEDS_PAGE
def test_restore():
    out = _run("restore.py", "--agents", "20", "--runs", "1")
    assert "reconciled and serving in" in out and "reconcile writes nothing:" in out


def test_restore_phases():
    out = _run("restore_phases.py", "--agents", "20", "--rounds", "1")
    assert "least CPU of the rounds: load" in out and "; 0 dashboard objects" in out


@NEEDS_PAGE
def test_dashboard_fanout():
    out = _run("dashboard_fanout.py", "--dashboards", "2", "--rate", "50", "--seconds", "1",
               "--runs", "1", "--agents", "5", "--calls", "2")
    assert "(snapshot held 7 agents+calls)" in out and "median (range)" in out


@NEEDS_PAGE
def test_realistic_load():
    # More dashboards than the service's default per-address limit (32): the
    # benchmark must raise it, as every dashboard comes from 127.0.0.1.
    out = _run("realistic_load.py", "--agents", "6", "--queues", "2", "--calls-per-second", "2",
               "--dashboards", "40", "--seconds", "3", "--warmup", "2", "--login-spacing", "0.01")
    assert "service CPU" in out and "event->dashboard p50" in out
    assert "0 dashboards dropped" in out


def test_simulator_rate():
    out = _run("simulator_rate.py", "--seconds", "1")
    assert "events" in out
