"""Fixtures for the deployment tests (ansible/, asterisk-config/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
BIN = Path(sys.executable).parent


def pytest_configure(config: pytest.Config) -> None:
    # A label only: slow tests still run by default (make test / CI).
    config.addinivalue_line("markers", "slow: takes minutes (runs anyway; -m 'not slow' to skip)")


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        pytest.fail(f"{name} is not installed (pip install -r requirements-dev.txt)")
    return found


def ansible_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_HOST_KEY_CHECKING="0",
        ANSIBLE_LINT_SKIP_VERSION_CHECK="1",
        PY_COLORS="0",
    )
    env.pop("ANSIBLE_CONFIG", None)
    env.update(extra)
    return env


def run(argv: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env or ansible_env(), capture_output=True,
                          text=True, timeout=timeout)
