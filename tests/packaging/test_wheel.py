"""One wheel that runs anywhere: it carries the page, installs on a machine
without Node.js, and serves the whole dashboard from any directory."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest_twisted
from pkgsupport import AGENT_PAGE, PAGE, clean_env, free_port, get, hello, no_node_env, start

PAGE_FILES = {"index.html", "live.js", "app.js", "app.css", "favicon.svg", "login.html", "login.js",
              "agent.html", "agent.js", "agent.css"}
# The libraries as the lockfile pins them: where npm puts each served file.
VENDOR = {
    "vue.global.prod.js": ("vue", "dist/vue.global.prod.js"),
    "bootstrap.min.css": ("bootstrap", "dist/css/bootstrap.min.css"),
}


def test_wheel_carries_exactly_the_served_files(wheel: Path, clone: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    static = sorted(n.removeprefix("callcenter/web/static/") for n in names
                    if n.startswith("callcenter/web/static/"))
    assert static == sorted(PAGE_FILES | {f"vendor/{v}" for v in VENDOR})
    assert not [n for n in names if "node_modules" in n or n.endswith(("package.json", "package-lock.json"))]
    with zipfile.ZipFile(wheel) as z:
        for name in PAGE_FILES:
            assert z.read(f"callcenter/web/static/{name}") == (clone / "static" / name).read_bytes()
        # The same bytes as the clone's own `npm ci` (make setup), and that
        # install is the version package-lock.json pins.
        lock = json.loads((clone / "static" / "package-lock.json").read_text())["packages"]
        for served, (package, path) in VENDOR.items():
            installed = clone / "static" / "node_modules" / package
            assert json.loads((installed / "package.json").read_text())["version"] == \
                lock[f"node_modules/{package}"]["version"]
            assert z.read(f"callcenter/web/static/vendor/{served}") == (installed / path).read_bytes()


def test_sdist_can_rebuild_the_wheel(clone: Path, tmp_path: Path) -> None:
    # No network needed: the test interpreter's setuptools builds it.
    subprocess.run(
        [sys.executable, "-c", f"import setuptools.build_meta as b; b.build_sdist({str(tmp_path)!r})"],
        cwd=clone, env=clean_env(), check=True, capture_output=True, timeout=300,
    )
    (sdist,) = tmp_path.glob("callcenter-*.tar.gz")
    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    assert {"setup.py", "setup.cfg", "pyproject.toml", "static/package.json",
            "static/package-lock.json", "twisted/plugins/callcenter_plugin.py",
            "callcenter/web/assets.py"} <= names
    assert {f"static/{n}" for n in PAGE_FILES} <= names
    assert not [n for n in names if "node_modules" in n or n.startswith("callcenter/web/static/")]


def test_building_without_npm_fails_with_one_clear_message(clone: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(clone)],
        cwd=tmp_path, env=clean_env(**no_node_env()), capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert out.count("error: building the callcenter wheel needs npm") == 1, out[-3000:]
    assert "Traceback" not in out
    assert not list(tmp_path.glob("*.whl"))


def test_installed_wheel_is_the_package_that_runs(installed: Path) -> None:
    probe = subprocess.run(
        [str(installed / "bin" / "python"), "-c",
         "import callcenter, callcenter.web.assets as a; print(callcenter.__file__); print(a.find_assets().index)"],
        cwd="/", env=clean_env(**no_node_env()), capture_output=True, text=True, check=True,
    )
    module, index = probe.stdout.split()
    assert module.startswith(str(installed)) and index.startswith(str(installed))


@pytest_twisted.ensureDeferred
async def test_installed_wheel_serves_the_dashboard_without_node(installed, redis, processes, tmp_path):
    web = free_port()
    service = start(
        processes,
        [str(installed / "bin" / "twistd"), "-n", "--pidfile=", "callcenter", "--simulate",
         "--listen", f"tcp:{web}:interface=127.0.0.1", "--redis", redis.url,
         "--report", str(tmp_path / "report.csv")],
        cwd="/", log=tmp_path / "twistd.log", **no_node_env(),
    )
    await service.wait_for("dashboard at")
    for path, ctype in PAGE:
        code, got, body = await get(f"http://127.0.0.1:{web}/{path}")
        assert code == 200 and got.startswith(ctype) and body, (path, code, got)
    code, _, page = await get(f"http://127.0.0.1:{web}/")
    for path, _ in PAGE[1:]:
        assert f'"{path}"'.encode() in page  # the page loads exactly these
    for path, ctype in AGENT_PAGE:
        code, got, body = await get(f"http://127.0.0.1:{web}/{path}")
        assert code == 200 and got.startswith(ctype) and body, (path, code, got)
    code, _, agent_page = await get(f"http://127.0.0.1:{web}/agent")
    for path, _ in AGENT_PAGE[1:]:
        assert f'"{path}"'.encode() in agent_page
    objects = await hello(web)
    assert [o["type"] for o in objects[:2]] == ["CONFIG", "STATS"]  # CONFIG first (docs/protocol.md)
    assert "Traceback" not in service.text() and "missing" not in service.text()


def test_pip_install_of_a_clone_carries_the_page_too(clone: Path, tmp_path: Path) -> None:
    # `pip install .` (npm present): the same build, straight into site-packages.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(clone)],
        cwd=tmp_path, env=clean_env(), check=True, capture_output=True, timeout=300,
    )
    static = target / "callcenter" / "web" / "static"
    assert {p.name for p in static.iterdir()} == PAGE_FILES | {"vendor"}
    assert {p.name for p in (static / "vendor").iterdir()} == set(VENDOR)
