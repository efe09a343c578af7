"""The README's commands, run as written in a fresh clone set up by `make
setup`; the dev venv's twistd works from any directory without PYTHONPATH."""

from __future__ import annotations

import re
import shlex
import signal
from collections.abc import Callable
from pathlib import Path

import pytest_twisted
from pkgsupport import REPO, free_port, get, hello, run, start
from twisted.internet import reactor
from twisted.internet.task import deferLater

# Every command of the README's ```sh blocks.  A command added there must be
# added here too, with how the test runs it.
README_COMMANDS = {
    "make demo",
    "make test",
    "DEMO_LISTEN=tcp:8081:interface=127.0.0.1 make demo",
    "DEMO_REDIS_URL=redis://127.0.0.1:6379/5 make demo",
    ".venv/bin/twistd callcenter --help",
    ".venv/bin/twistd -n callcenter --simulate",
    "make wheel",
}
SECTIONS = ["PBX:", "Web dashboard:", "Redis:", "KPIs and report:", "Simulator:"]


def readme_commands() -> list[str]:
    blocks = re.findall(r"^```sh\n(.*?)^```", (REPO / "README.md").read_text(), re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_lists_the_commands_tested_here():
    assert set(readme_commands()) == README_COMMANDS
    # Links stay inside the repository.
    text = (REPO / "README.md").read_text()
    assert "../" not in text
    for target in re.findall(r"\]\(([^)]+)\)", text):
        path, _, anchor = target.partition("#")
        assert (REPO / path).is_file(), target
        if anchor:  # a heading of that file, slugged as GitHub does
            headings = re.findall(r"^#+ (.+)$", (REPO / path).read_text(), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, target


def test_editable_twistd_help_from_anywhere(clone: Path):
    # `make setup` did the editable install (the clone fixture); no PYTHONPATH.
    for cwd in (clone, "/"):
        out = run(shlex.split(".venv/bin/twistd callcenter --help".replace(".venv", str(clone / ".venv"))),
                  cwd=cwd).stdout
        assert [s for s in SECTIONS if s in out] == SECTIONS
        assert out.index("PBX:") < out.index("--ami-secret-file") < out.index("Web dashboard:")
        flat = " ".join(out.split())
        for option, variable in [("--ami=", "CALLCENTER_AMI]"), ("--listen=", "CALLCENTER_LISTEN"),
                                 ("--redis=", "CALLCENTER_REDIS]"), ("--report=", "CALLCENTER_REPORT"),
                                 ("--simulate", "CALLCENTER_SIMULATE")]:
            assert option in flat and variable in flat, option


@pytest_twisted.ensureDeferred
async def test_editable_twistd_simulate_from_anywhere(clone, redis, processes, tmp_path):
    # As written, from /; the environment points it at a private Redis and a
    # free port (the README's defaults are the developer's own 6379 and 8080).
    web = free_port()
    service = start(processes, [str(clone / ".venv/bin/twistd"), "-n", "callcenter", "--simulate"],
                    cwd="/", log=tmp_path / "twistd.log", CALLCENTER_REDIS=redis.url,
                    CALLCENTER_LISTEN=f"tcp:{web}:interface=127.0.0.1",
                    CALLCENTER_REPORT=str(tmp_path / "report.csv"))
    await service.wait_for("dashboard at")
    code, _, page = await get(f"http://127.0.0.1:{web}/")
    assert code == 200 and b'<div id="app">' in page
    code, _, vue = await get(f"http://127.0.0.1:{web}/vendor/vue.global.prod.js")
    assert code == 200 and vue == (clone / "static/node_modules/vue/dist/vue.global.prod.js").read_bytes()
    assert (await hello(web))[1]["type"] == "STATS"  # after CONFIG


async def _demo(clone: Path, tmp_path: Path, processes, web: int,
                until: Callable[[], bool] = lambda: True, **env: str) -> str:
    demo = start(processes, ["make", "demo"], cwd=clone, log=tmp_path / "demo.log", **env)
    await demo.wait_for(f"callcenter demo: dashboard at http://127.0.0.1:{web}/", seconds=300)
    await demo.wait_for(f"#info] dashboard at http://127.0.0.1:{web}/")  # twistd listens
    code, _, page = await get(f"http://127.0.0.1:{web}/")
    assert code == 200 and b'<div id="app">' in page
    objects = await hello(web)
    assert [o["type"] for o in objects[:2]] == ["CONFIG", "STATS"]  # CONFIG first (docs/protocol.md)
    for _ in range(120):
        if until():
            break
        await deferLater(reactor, 0.25, lambda: None)
    # Ctrl-C: the terminal signals the whole foreground group.
    demo.signal_group(signal.SIGINT)
    status = await demo.exited()
    out = demo.text()
    assert "Error" not in out and "Traceback" not in out, out[-3000:]
    assert status in (0, -signal.SIGINT), (status, out[-3000:])
    return out


@pytest_twisted.ensureDeferred
async def test_make_demo_uses_a_private_redis_and_stops_on_ctrl_c(clone, processes, tmp_path):
    # "make demo" and "DEMO_LISTEN=... make demo": the same, on a free port here.
    web = free_port()
    out = await _demo(clone, tmp_path, processes, web, DEMO_LISTEN=f"tcp:{web}:interface=127.0.0.1")
    (url,) = re.findall(r"a private Redis at (redis://127\.0\.0\.1:(\d+)/0)", out)
    assert url[1] != "6379"
    # Everything it started is gone (the private Redis with it).
    assert not run(["ps", "-eo", "args"], cwd="/").stdout.count(f"redis-server 127.0.0.1:{url[1]}")


@pytest_twisted.ensureDeferred
async def test_make_demo_with_demo_redis_url(clone, redis, processes, tmp_path):
    # "DEMO_REDIS_URL=... make demo", with this test's private Redis for 6379.
    web = free_port()
    def written() -> bool:
        return bool(redis.command("KEYS", "callcenter-demo:*", db=5))

    out = await _demo(clone, tmp_path, processes, web, until=written,
                      DEMO_REDIS_URL=redis.url.replace("/0", "/5"),
                      DEMO_LISTEN=f"tcp:{web}:interface=127.0.0.1")
    assert "a private Redis" not in out
    assert written(), "the demo wrote nothing into DEMO_REDIS_URL's database"
    assert not redis.command("KEYS", "*", db=0)
