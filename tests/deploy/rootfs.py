"""A throwaway Debian root to run the playbook against, made with debootstrap.

The base image (debootstrap + what an Ubuntu server has anyway: python3,
python3-apt, sudo, ca-certificates; no Node.js: the wheel carries the page) is
built once and cached as a tar under
var/deploy-test/ (gitignored); each test run unpacks a fresh copy.

Everything that runs inside the root runs in a private mount namespace
(``unshare --mount``) where /proc and /dev are mounted: the mounts vanish with
the namespace, so nothing is left mounted even if a test dies.  A
policy-rc.d forbids package scripts to start daemons (Redis would otherwise
start inside the root, on the host's network, on port 6379).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / "var" / "deploy-test"

INCLUDE = ["python3", "python3-apt", "sudo", "ca-certificates"]
# Downloaded (not installed) into the image's apt cache, so that the roles'
# installs do not fetch them again on every run.
PREFETCH = ["redis-server", "python3-venv", "logrotate"]
# Installed in the image (none: a target needs no Node.js or npm, and the
# tests check that the playbook installs neither).
PREINSTALL: list[str] = []
IMAGE_VERSION = "4"

POLICY_RC_D = "#!/bin/sh\n# Test root: package scripts must not start daemons.\nexit 101\n"


class RootfsUnavailable(Exception):
    """The machine cannot build a Debian root (the reason is the message)."""


def host_release() -> tuple[str, str]:
    """(mirror URL, suite) of the host's Debian main archive, as apt uses it."""
    fields = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        fields[key] = value.strip().strip('"')
    if fields.get("ID") != "debian":
        raise RootfsUnavailable(f"host is {fields.get('ID')!r}, not Debian: no Debian mirror known")
    suite = fields.get("VERSION_CODENAME") or "bookworm"
    for uri, suites in _apt_sources():
        if suite in suites and "security" not in uri:
            return uri, suite
    raise RootfsUnavailable(f"no apt source for the Debian suite {suite!r} in /etc/apt")


def _apt_sources() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    apt = Path("/etc/apt")
    for path in sorted(apt.glob("sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            entry = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    key, _, value = line.partition(":")
                    entry[key.strip().lower()] = value.split()
            if "deb" in entry.get("types", []) and entry.get("enabled", ["yes"]) != ["no"]:
                found.extend((uri, entry.get("suites", [])) for uri in entry.get("uris", []))
    for path in [apt / "sources.list", *sorted(apt.glob("sources.list.d/*.list"))]:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb":
                found.append((words[1], [words[2]]))
    return found


def missing_tools() -> list[str]:
    return [t for t in ("debootstrap", "unshare", "chroot", "tar", "mount") if not shutil.which(t)]


def cached_image() -> Path:
    """The cached base image, built first if needed."""
    if os.geteuid() != 0:
        raise RootfsUnavailable("building a Debian root needs root (debootstrap, chroot, mount)")
    if missing_tools():
        raise RootfsUnavailable(f"missing tools: {', '.join(missing_tools())}")
    mirror, suite = host_release()
    key = hashlib.sha256(
        repr((IMAGE_VERSION, mirror, suite, INCLUDE, PREFETCH, PREINSTALL)).encode()
    ).hexdigest()[:12]
    image = CACHE_DIR / f"debian-{suite}-{key}.tar"
    if image.is_file():
        return image
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; others wait and reuse it
        if not image.is_file():
            _build_image(image, mirror, suite)
    return image


def _build_image(image: Path, mirror: str, suite: str) -> None:
    for old in CACHE_DIR.glob("debian-*.tar"):
        old.unlink()
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="build-") as tmp:
        root = Path(tmp) / "root"
        _run(
            ["debootstrap", "--include=" + ",".join(INCLUDE), suite, str(root), mirror],
            "debootstrap",
        )
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text(POLICY_RC_D)
        policy.chmod(0o755)
        # A throwaway root needs no fsync per file, nor a man page index:
        # package installs take a fraction of the time.
        (root / "etc/dpkg/dpkg.cfg.d/test-root").write_text("force-unsafe-io\n")
        trust_host_cas(root)
        proc = run_in_root(
            root,
            ["chroot", str(root), "sh", "-c",
             "echo 'man-db man-db/auto-update boolean false' | debconf-set-selections"
             " && apt-get update -qq"
             + "".join(f" && apt-get install -y -qq --no-install-recommends {p}" for p in PREINSTALL)
             + " && apt-get install -y -qq --download-only " + " ".join(PREFETCH)],
            timeout=900,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"prefetching packages failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        partial = image.with_suffix(".partial")
        _run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], "tar")
        partial.rename(image)


def unpack(image: Path, dest: Path) -> Path:
    root = dest / "root"
    root.mkdir()
    _run(["tar", "--numeric-owner", "-C", str(root), "-xpf", str(image)], "untar")
    trust_host_cas(root)
    return root


_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def trust_host_cas(root: Path) -> int:
    """Make the root trust every CA this machine trusts beyond Debian's own.

    HTTPS to the package registries may go through a proxy whose CA only the
    host's bundle holds; a real server would have the same CA installed.
    Installed the Debian way (update-ca-certificates), so the package
    triggers that rebuild the bundle keep it.
    """
    host = Path("/etc/ssl/certs/ca-certificates.crt")
    inside = root / "etc/ssl/certs/ca-certificates.crt"
    if not host.is_file() or not inside.is_file():
        return 0
    known = set(_PEM.findall(inside.read_text()))
    extra = [c for c in _PEM.findall(host.read_text()) if c not in known]
    local = root / "usr/local/share/ca-certificates"
    local.mkdir(parents=True, exist_ok=True)
    for i, cert in enumerate(extra):
        (local / f"host-extra-{i}.crt").write_text(cert + "\n")
    if extra:
        proc = subprocess.run(["chroot", str(root), "update-ca-certificates"],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"update-ca-certificates failed: {proc.stdout}{proc.stderr}")
    return len(extra)


def run_in_root(
    root: Path,
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    binds: dict[Path, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv (on the host) in a private mount namespace where root has
    /proc, /dev and a resolv.conf, plus ``binds`` (host dir -> dir in root)."""
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    mounts = [
        f"mount -t proc proc {shlex.quote(str(root / 'proc'))}",
        f"mount --rbind /dev {shlex.quote(str(root / 'dev'))}",
    ]
    for host_dir, inside in (binds or {}).items():
        target = root / inside.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        host_dir.mkdir(parents=True, exist_ok=True)
        mounts.append(f"mount --bind {shlex.quote(str(host_dir))} {shlex.quote(str(target))}")
    script = " && ".join(mounts) + ' && exec "$@"'
    try:
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        kill_processes_in(root)


def kill_processes_in(root: Path) -> list[int]:
    """Kill whatever still runs with its root directory in ``root``."""
    killed = []
    real = os.path.realpath(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "root") == real:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return killed


def _run(argv: list[str], what: str, timeout: float = 900) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
