"""What the benchmarks share: where the traces are, the shipped read classes,
a throw-away redis-server, free ports, CPU from /proc, medians and ranges.

Benchmarks run by hand (``make bench``), never in ``make test``; they must
not import from tests/, so their helpers live here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANAGER_CONF = ROOT / "asterisk-config" / "manager.conf"


def traces_dir() -> Path:
    """``shared/ami-traces`` beside the checkout or any folder above it
    (a worktree sits one level deeper); ``CALLCENTER_TRACES`` overrides."""
    env = os.environ.get("CALLCENTER_TRACES")
    if env:
        return Path(env)
    for up in ROOT.parents:
        candidate = up / "shared" / "ami-traces"
        if candidate.is_dir():
            return candidate
    raise SystemExit("shared/ami-traces not found; set CALLCENTER_TRACES")


def shipped_read_classes(path: Path = MANAGER_CONF) -> frozenset[str]:
    """The ``read=`` classes of the service's user in the shipped manager.conf."""
    section = None
    for line in path.read_text().splitlines():
        line = line.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "callcenter" and line.startswith("read"):
            return frozenset(c.strip() for c in line.split("=", 1)[1].split(","))
    raise SystemExit(f"no read= in the [callcenter] section of {path}")


_PRIVILEGE = re.compile(rb"(?m)^Privilege: ([^\r\n]*)")


def event_classes(block: bytes) -> frozenset[str]:
    """Asterisk's classes of one event (its ``Privilege:`` header, less ``all``)."""
    m = _PRIVILEGE.search(block)
    if m is None:
        return frozenset()
    return frozenset(c for c in m.group(1).decode().split(",") if c and c != "all")


def delivered(block: bytes, read: frozenset[str]) -> bool:
    """Would a session with these read classes get this event?  manager.c sends an
    event when the session's read mask shares a class with the event's."""
    return bool(event_classes(block) & read)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_server() -> Iterator[int]:
    """A throw-away redis-server on a free loopback port (no persistence); yields its port."""
    tmp = tempfile.mkdtemp(prefix="bench-redis-")
    port = free_port()
    server = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port),
         "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(250):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.02)
        else:
            raise SystemExit(f"redis-server did not start on port {port}")
        yield port
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def redis_command(port: int, *args: str) -> str:
    out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True)
    return out.stdout


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: Iterable[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def med_range(values: list[float], fmt: str = "{:,.1f}") -> str:
    """``median (min – max)`` over runs."""
    if len(values) == 1:
        return fmt.format(values[0])
    return (f"{fmt.format(statistics.median(values))} "
            f"({fmt.format(min(values))} – {fmt.format(max(values))})")


def command_line() -> str:
    """The command that produced the figures, for the reader to re-run."""
    script = os.path.relpath(sys.argv[0], ROOT) if os.path.isabs(sys.argv[0]) else sys.argv[0]
    return ".venv/bin/python " + shlex.join([script, *sys.argv[1:]])


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
