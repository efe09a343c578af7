"""--alert-* options: parsed, checked, and sent in CONFIG.alerts."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.python import usage

from callcenter.alerts import parse_pause_minutes
from callcenter.options import Options
from callcenter.web.page_config import config_object


def test_pause_minutes_per_reason_and_default() -> None:
    assert parse_pause_minutes("Lunch=60, Break=15,*=10") == {"Lunch": 60, "Break": 15, "*": 10}
    assert parse_pause_minutes("10") == {"*": 10}
    assert parse_pause_minutes("") == {}
    assert parse_pause_minutes("After call work=5") == {"After call work": 5}


@pytest.mark.parametrize("bad", ["Lunch", "=5", "Lunch=0", "Lunch=abc", "Lunch=١٠", "Lunch=5,Lunch=6",
                                 "Lunch=99999", "x" * 65 + "=5", "Lu\x00nch=5"])
def test_bad_pause_minutes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_pause_minutes(bad)


def test_options_to_config_object(tmp_path: Path) -> None:
    opts = Options()
    opts.parseOptions(["--simulate", "--report", str(tmp_path / "r.csv"), "--alert-waiting", "3",
                       "--alert-longest-wait", "90", "--alert-sla", "75", "--alert-pause-minutes", "Lunch=60,*=10"])
    assert config_object(alerts=opts["alerts"]) == {"type": "CONFIG", "alerts": {
        "waiting": 3, "longest_wait": 90, "sla": 75.0, "pause_minutes": {"Lunch": 60, "*": 10}}}
    off = Options()
    off.parseOptions(["--simulate", "--report", str(tmp_path / "r.csv")])
    assert config_object(alerts=off["alerts"])["alerts"] == {
        "waiting": None, "longest_wait": None, "sla": None, "pause_minutes": {}}


@pytest.mark.parametrize("args", [["--alert-waiting", "-1"], ["--alert-sla", "101"],
                                  ["--alert-pause-minutes", "Lunch=-5"], ["--alert-longest-wait", "x"]])
def test_bad_alert_options_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["--simulate", "--report", str(tmp_path / "r.csv"), *args])


def test_the_service_sends_config_only_with_an_alert_set(tmp_path: Path) -> None:
    from callcenter.service import _page_config

    opts = Options()
    opts.parseOptions(["--simulate", "--report", str(tmp_path / "r.csv")])
    assert _page_config(opts) is None
    opts = Options()
    opts.parseOptions(["--simulate", "--report", str(tmp_path / "r.csv"), "--alert-pause-minutes", "*=10"])
    assert _page_config(opts) == {"type": "CONFIG", "alerts": {
        "waiting": None, "longest_wait": None, "sla": None, "pause_minutes": {"*": 10}}}
