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
    assert config_object(alerts=opts["alerts"])["alerts"] == {
        "waiting": 3, "longest_wait": 90, "sla": 75.0, "pause_minutes": {"Lunch": 60, "*": 10}}
    off = Options()
    off.parseOptions(["--simulate", "--report", str(tmp_path / "r.csv")])
    assert config_object(alerts=off["alerts"])["alerts"] == {
        "waiting": None, "longest_wait": None, "sla": None, "pause_minutes": {}}


@pytest.mark.parametrize("args", [["--alert-waiting", "-1"], ["--alert-sla", "101"],
                                  ["--alert-pause-minutes", "Lunch=-5"], ["--alert-longest-wait", "x"]])
def test_bad_alert_options_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["--simulate", "--report", str(tmp_path / "r.csv"), *args])


def test_the_service_puts_the_alerts_in_its_config(tmp_path: Path) -> None:
    from callcenter.service import CallcenterService, _page_config

    opts = Options()
    opts.parseOptions(["--simulate", "--report", str(tmp_path / "r.csv"), "--alert-pause-minutes", "*=10"])
    config = _page_config(opts, CallcenterService(opts).center)
    assert config["type"] == "CONFIG" and config["alerts"] == {
        "waiting": None, "longest_wait": None, "sla": None, "pause_minutes": {"*": 10}}
    assert "pause_reasons" in config  # issue 15's keys kept
