"""Fixtures of the packaging tests: a fresh clone set up the README's way, its
wheel, and a fresh venv with that wheel installed.  Each is made once per
session (the slow part: pip and npm) and shared by every test here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pkgsupport import REPO, Process, no_node_env, run
from store.conftest import RedisServer

# What .gitignore keeps out of a clone (for a tree without git).
NOT_IN_A_CLONE = (".git", ".venv", "var", "node_modules", "build", "dist", "*.egg-info",
                  "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "dropin.cache",
                  "report.csv", "twistd.log*", "artifacts")


@pytest.fixture(scope="session")
def clone(tmp_path_factory) -> Path:
    """A fresh clone of the working tree (its tracked and new files, nothing
    ignored: no .venv, no node_modules), after `make setup`."""
    dest = tmp_path_factory.mktemp("clone") / "callcenter"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True)
    if listed.returncode != 0:  # not a git checkout (an unpacked sdist, a copy)
        shutil.copytree(REPO, dest, symlinks=True, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
    for name in filter(None, listed.stdout.split(b"\0") if listed.returncode == 0 else []):
        src = REPO / os.fsdecode(name)
        if src.is_file():  # a file deleted but not yet committed is listed too
            (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / os.fsdecode(name))
    run(["make", "setup", f"PYTHON={sys.executable}"], cwd=dest)
    return dest


@pytest.fixture(scope="session")
def wheel(clone: Path) -> Path:
    """The README's `make wheel` in the fresh clone."""
    run(["make", "wheel"], cwd=clone, timeout=600)
    (built,) = (clone / "dist").glob("callcenter-*.whl")
    return built


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed by its pip (dependencies from the
    index), as an admin does; nothing of the checkout is reachable from it."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    # With a PATH holding no node or npm, as on a server without Node.js.
    run([sys.executable, "-m", "venv", str(venv)], cwd="/", **no_node_env())
    run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], cwd="/", timeout=900, **no_node_env())
    return venv


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for p in started:
        p.stop()




@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on a free port (never the one on 6379)."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
