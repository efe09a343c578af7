#!/usr/bin/env python3
"""Build what the callcenter role installs, on the Ansible controller.

Prints one JSON object naming the project's wheel (which carries the
dashboard page and its libraries as package data: building it runs npm
here, on the controller, never on the server).  The wheel is
byte-for-byte reproducible from the same sources (fixed timestamps), so the
role's copy reports "changed" only when the sources changed: a second run of
the playbook changes nothing.

Usage: build_release.py --src PROJECT_DIR --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# 1980-01-01: the earliest time a zip (wheel) can record.
EPOCH = 315532800

# Never part of a release: VCS data, virtualenvs, build leftovers, caches.
SKIP_DIRS = {
    ".git", ".venv", "venv", "var", "build", "dist", "node_modules", "__pycache__",
    ".pytest_cache", ".ruff_cache", ".hypothesis", "tests", "ansible", "benchmarks",
}


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIP_DIRS or n.endswith((".egg-info", ".pyc"))}


def build_wheel(src: Path, out: Path) -> Path:
    # Build from a clean copy: setuptools reuses build/ and *.egg-info, which
    # in a developer's tree may still hold modules deleted since.
    with tempfile.TemporaryDirectory(prefix="callcenter-src-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(src, copy, ignore=_ignore, symlinks=True)
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH), PIP_DISABLE_PIP_VERSION_CHECK="1")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(copy)],
            check=True,
            env=env,
            stdout=sys.stderr,
        )
    wheels = sorted(out.glob("callcenter-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one callcenter wheel in {out}, found {wheels}")
    return wheels[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    src, out = args.src.resolve(), args.out.resolve()
    if not (src / "setup.cfg").is_file() and not (src / "pyproject.toml").is_file():
        raise SystemExit(f"{src} is not the callcenter project (no setup.cfg/pyproject.toml)")
    out.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(src, out)
    json.dump({"wheel": str(wheel), "wheel_name": wheel.name}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
