#!/usr/bin/env python3
"""Build what the callcenter role installs, on the Ansible controller.

Prints one JSON object: the project's wheel and a tar of the dashboard's
static/ directory (without node_modules).  Both are byte-for-byte
reproducible from the same sources (fixed timestamps, sorted entries), so the
role's copies report "changed" only when the sources changed: a second run
of the playbook changes nothing.

Usage: build_release.py --src PROJECT_DIR --out DIR
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
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


def static_files(static: Path) -> list[Path]:
    if not static.is_dir():
        return []
    files = []
    for root, dirs, names in os.walk(static):
        dirs[:] = sorted(d for d in dirs if d not in ("node_modules", "__pycache__"))
        files.extend(Path(root, n) for n in sorted(names))
    return [f for f in files if f.is_file() and not f.is_symlink()]


def build_static_tar(static: Path, files: list[Path], out: Path) -> Path:
    # Files only (no directory entries: their mtimes change when npm adds
    # node_modules, and unarchive would then see a difference every run).
    path = out / "static.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for f in files:
            info = tarfile.TarInfo("./" + f.relative_to(static).as_posix())
            data = f.read_bytes()
            info.size = len(data)
            info.mtime = EPOCH
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return path


def deps_digest(static: Path) -> str | None:
    if not (static / "package.json").is_file():
        return None
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        p = static / name
        h.update(name.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"") + b"\0")
    return h.hexdigest()


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
    static = src / "static"
    files = static_files(static)
    tar = build_static_tar(static, files, out) if files else None
    json.dump(
        {
            "wheel": str(wheel),
            "wheel_name": wheel.name,
            "static_tar": str(tar) if tar else "",
            "static_files": len(files),
            "npm": (static / "package.json").is_file(),
            "npm_lock": (static / "package-lock.json").is_file(),
            "npm_deps": deps_digest(static) or "",
        },
        sys.stdout,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
