"""Options: every DESIGN option, environment variables, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.python import usage

from callcenter.options import Options, env_name


def parse(args: list[str], env: dict[str, str] | None = None, tmp: Path | None = None) -> Options:
    o = Options(environ=env or {})
    base = ["--report", str(tmp / "r.csv")] if tmp else []
    o.parseOptions(base + args)
    return o


def test_design_command_line(tmp_path: Path) -> None:
    secret = tmp_path / "ami.secret"
    secret.write_text("s3cret\n")
    o = parse(
        [
            "--ami", "tcp:host=127.0.0.1:port=5038", "--ami-user", "admin",
            "--ami-secret-file", str(secret), "--listen", "tcp:8080:interface=127.0.0.1",
            "--redis", "redis://127.0.0.1:6379/0", "--sla", "10",
        ],
        tmp=tmp_path,
    )
    assert o["ami-secret"] == "s3cret" and o["sla"] == 10 and o["ami-user"] == "admin"


def test_environment_and_command_line_precedence(tmp_path: Path) -> None:
    env = {env_name("ami-secret"): "fromenv", "CALLCENTER_SLA": "20", "CALLCENTER_SIMULATE": "1"}
    o = parse(["--sla", "15"], env, tmp_path)
    assert o["ami-secret"] == "fromenv" and o["sla"] == 15 and o["simulate"]


def test_help_lists_every_option_with_its_variable() -> None:
    text = str(Options(environ={}))
    for opt in ["ami", "ami-user", "ami-secret-file", "listen", "redis", "report", "sla", "simulate",
                "redis-prefix", "day-starts-at", "timezone", "allowed-origins"]:
        assert f"--{opt}" in text
        assert env_name(opt) in text.replace("\n", " ").replace("  ", "")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sla", "ten"], "--sla must be a whole number"),
        (["--sla", "0"], "--sla must be greater than 0"),
        (["--day-starts-at", "25:00"], "--day-starts-at must be HH:MM"),
        (["--timezone", "Mars/Olympus"], "--timezone 'Mars/Olympus' is not a known time zone"),
        (["--redis", "http://x"], "--redis must look like redis://"),
        (["--ami-secret-file", "/nonexistent/secret"], "--ami-secret-file /nonexistent/secret: cannot read"),
        ([], "no AMI secret"),
    ],
)
def test_bad_values_give_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError) as e:
        parse(args, {} if "--ami-secret-file" in args or not args else {"CALLCENTER_AMI_SECRET": "x"}, tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unwritable_report_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(usage.UsageError, match="report file"):
        Options(environ={"CALLCENTER_AMI_SECRET": "x"}).parseOptions(["--report", str(tmp_path / "f" / "r.csv")])
