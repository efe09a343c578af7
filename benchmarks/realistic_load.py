"""Realistic load: the simulated PBX driving the real service with many dashboards.

Run by hand (``make bench``; never by the tests):

    .venv/bin/python benchmarks/realistic_load.py [--agents 1000] [--queues 10]
        [--calls-per-second 3] [--dashboards 500] [--dashboard-procs 2] [--seconds 60]

Every process is real and on loopback:

* a throw-away ``redis-server`` on a free port;
* the simulator (``python -m callcenter.simulator.cli``, i.e. ``callcenter-pbx-sim``):
  ``--agents`` agents over ``--queues`` queues, ``--calls-per-second`` new callers
  in all (Poisson, spread evenly over the queues), the events of its AMI user;
* the service, ``twistd -n callcenter`` with ``--redis`` on that server and
  ``--report`` on a temporary file;
* ``--dashboard-procs`` processes holding ``--dashboards`` WebSocket clients in
  all (raw sockets, no Twisted), each of which says HELLO and then notes when
  each call first shows up as ``"status":"QUEUED"``;
* a tap in this process: a second AMI session to the simulator, which notes
  each ``QueueCallerJoin``'s ``Timestamp`` header.

After the agents have logged in (``--warmup``) the dashboards connect, and for
``--seconds`` the service's CPU is read from ``/proc/<pid>/stat`` (share of one
core) and every caller who joins a queue is one latency sample per dashboard:
dashboard receive time minus the join event's ``Timestamp`` (both
``time.time()`` on the same machine: the simulator stamps the event with its
reactor's clock as it writes it).  Targets: service CPU <= 15 % of one core,
p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    command_line,
    cpu_seconds,
    free_port,
    load_average,
    pct,
    redis_server,
)

SECRET = "bench"
USER = "callcenter"
TARGET_CPU = 0.15  # share of one core
TARGET_P99_MS = 50.0
QUEUED = re.compile(rb'"type":"CALL","id":"([^"]+)","callerid":"[^"]*","status":"QUEUED"')


# -------------------------------------------------------------- dashboards (child)


class Dashboard:
    KEY = base64.b64encode(b"0123456789abcdef").decode()

    def __init__(self, port: int, traffic: dict[int, list[int]]) -> None:
        self.traffic = traffic  # whole second -> [text frames, their bytes], all dashboards
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.buf = b""
        self.open = False
        self.snapshot = False  # the first text frame after HELLO has arrived
        self.seen: dict[str, float] = {}
        self.sock.sendall(
            (f"GET /callcenter HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nOrigin: http://127.0.0.1:{port}\r\n"
             f"Sec-WebSocket-Key: {self.KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())

    def readable(self) -> None:
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return
        if not data:
            raise RuntimeError("the service closed a dashboard")
        now = time.time()
        if not self.open:
            self.buf += data
            if b"\r\n\r\n" not in self.buf:
                return
            head, data = self.buf.split(b"\r\n\r\n", 1)
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"WebSocket refused: {head[:80]!r}")
            mask = os.urandom(4)
            self.sock.sendall(bytes([0x81, 0x85]) + mask
                              + bytes(b ^ mask[i % 4] for i, b in enumerate(b"HELLO")))
            self.open = True
            self.buf = b""
        self.buf += data
        self._frames(now)

    def _frames(self, now: float) -> None:
        """Server frames are unmasked: read each one's JSON as is; answer pings
        (the service drops a dashboard that does not pong)."""
        buf, pos = self.buf, 0
        while len(buf) - pos >= 2:
            opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if len(buf) - pos < head + n:
                break
            payload = buf[pos + head : pos + head + n]
            pos += head + n
            if opcode == 0x9:  # ping: pong with the same payload, masked as a client must
                mask = os.urandom(4)
                self.sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask
                                  + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            elif opcode == 0x1:
                self.snapshot = True
                counts = self.traffic.setdefault(int(now), [0, 0])
                counts[0] += 1
                counts[1] += n
                if b'"QUEUED"' in payload:
                    for m in QUEUED.finditer(payload):
                        self.seen.setdefault(m.group(1).decode(), now)
        self.buf = buf[pos:]


def dashboards_child(port: int, n: int, out: str, batch: int) -> None:
    """Hold ``n`` dashboards until stdin closes; then write what each saw to ``out``.

    They connect ``batch`` at a time, and each batch has its HELLO snapshots
    before the next connects (as browsers reopening the page after a restart
    would, roughly; the service builds one snapshot per reactor turn for all
    the HELLOs of that turn): a process that connected all before reading any
    would be a slow client the service rightly drops."""
    sel = selectors.DefaultSelector()
    boards: list[Dashboard] = []
    traffic: dict[int, list[int]] = {}
    dropped = 0

    def pump(timeout: float) -> None:
        nonlocal dropped
        for key, _ in sel.select(timeout):
            if key.data is None:
                continue
            try:
                key.data.readable()
            except (OSError, RuntimeError):  # the service dropped it
                sel.unregister(key.fileobj)
                dropped += 1

    for first in range(0, n, batch):
        group = [Dashboard(port, traffic) for _ in range(min(batch, n - first))]
        for d in group:
            sel.register(d.sock, selectors.EVENT_READ, d)
        boards += group
        deadline = time.monotonic() + 30
        while (not all(d.snapshot for d in group) and dropped == 0
               and time.monotonic() < deadline):
            pump(0.01)
        if dropped or not all(d.snapshot for d in group):
            # Refused or never answered: say so at once, do not wait for the rest.
            print(f"FAILED dashboards {first + 1}-{first + len(group)} of {n}: "
                  f"{f'{dropped} closed by the service' if dropped else 'no snapshot in 30 s'}",
                  flush=True)
            return
    sel.register(sys.stdin, selectors.EVENT_READ, None)
    print("READY", flush=True)
    while True:
        ready = sel.select(1.0)
        if any(key.data is None for key, _ in ready) and not sys.stdin.readline():
            Path(out).write_text(json.dumps({"seen": [d.seen for d in boards],
                                             "dropped": dropped, "traffic": traffic}))
            return
        for key, _ in ready:
            if key.data is not None:
                try:
                    key.data.readable()
                except (OSError, RuntimeError):
                    sel.unregister(key.fileobj)
                    dropped += 1


# ------------------------------------------------------------------- the AMI tap


class Tap(threading.Thread):
    """A second AMI session: each QueueCallerJoin's Uniqueid -> its Timestamp."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.joins: dict[str, float] = {}
        self.lag: list[float] = []  # tap receive time - Timestamp: is the clock shared?
        self.events = 0
        self.stopped = False

    def run(self) -> None:
        self.sock.sendall(f"Action: Login\r\nUsername: {USER}\r\nSecret: {SECRET}\r\n"
                          "Events: on\r\n\r\n".encode())
        buf = b""
        while not self.stopped:
            data = self.sock.recv(1 << 16)
            if not data:
                return
            now = time.time()
            buf += data.replace(b"\r", b"")
            *blocks, buf = buf.split(b"\n\n")
            for block in blocks:
                if not block.startswith(b"Event: "):
                    continue
                self.events += 1
                if block.startswith(b"Event: QueueCallerJoin\n"):
                    h = dict(line.split(": ", 1) for line in block.decode().split("\n")
                             if ": " in line)
                    if "Timestamp" in h:
                        ts = float(h["Timestamp"])
                        self.joins.setdefault(h["Uniqueid"], ts)
                        self.lag.append(now - ts)


# -------------------------------------------------------------------------- main


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far (/proc/<pid>/stat), as
    ``benchmarks.common.cpu_seconds`` reads their sum: system time is where
    the sockets' syscalls show."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port} within {timeout:g} s")


def run(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    procs: list[subprocess.Popen] = []
    env = dict(os.environ, PYTHONPATH=str(ROOT), CALLCENTER_AMI_SECRET=SECRET)
    try:
        with redis_server() as redis_port:
            queues = ",".join(f"q{i:02d}" for i in range(1, args.queues + 1))
            sim = subprocess.Popen(
                [sys.executable, "-m", "callcenter.simulator.cli",
                 "--listen", "tcp:0:interface=127.0.0.1", "--username", USER,
                 "--secret", SECRET, "--agents", str(args.agents), "--queues", queues,
                 "--calls-per-minute", f"{args.calls_per_second * 60 / args.queues:g}",
                 "--login-spacing", f"{args.login_spacing:g}", "--seed", str(args.seed),
                 "--quiet"],
                stdout=subprocess.PIPE, text=True, env=env, cwd=tmp)
            procs.append(sim)
            line = sim.stdout.readline()
            m = re.search(r"AMI on [^:]+:(\d+)", line)
            if not m:
                raise SystemExit(f"simulator did not start: {line!r}")
            ami_port = int(m.group(1))
            tap = Tap(ami_port)
            tap.start()
            web_port = free_port()
            twistd = str(Path(sys.executable).with_name("twistd"))
            service = subprocess.Popen(
                [twistd, "-n", "--pidfile=", f"--logfile={tmp / 'twistd.log'}", "callcenter",
                 "--ami", f"tcp:host=127.0.0.1:port={ami_port}", "--ami-user", USER,
                 "--listen", f"tcp:{web_port}:interface=127.0.0.1",
                 "--redis", f"redis://127.0.0.1:{redis_port}/0",
                 "--report", str(tmp / "report.csv"),
                 # Every dashboard comes from 127.0.0.1: the per-address limit
                 # (default 32) would close all but 32 of them at accept.
                 "--max-per-address", str(args.dashboards),
                 "--max-connections", str(args.dashboards + 64)],
                env=env, cwd=tmp)
            procs.append(service)
            _wait_port(web_port, service, "the service")
            time.sleep(args.warmup)  # agents log in, the first calls queue

            connect0 = time.time()
            per = [args.dashboards // args.dashboard_procs] * args.dashboard_procs
            per[0] += args.dashboards - sum(per)
            children = []
            for i, n in enumerate(per):
                child = subprocess.Popen(
                    [sys.executable, __file__, "--dashboards-child", str(web_port), str(n),
                     str(tmp / f"dash{i}.json"), "--connect-batch", str(args.connect_batch)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                procs.append(child)
                children.append(child)
            for child in children:
                answer = child.stdout.readline().strip()
                if answer != "READY":
                    raise SystemExit(f"a dashboard process did not start: {answer or 'it exited'} "
                                     f"(the service's log: {tmp / 'twistd.log'}, kept with --keep)")
            time.sleep(2.0)  # every HELLO snapshot delivered
            print(f"  dashboards connected {time.time() - connect0:.1f} s after the warm-up; "
                  f"measuring {args.seconds:g} s", flush=True)
            t0, cpu0, joins0 = time.time(), cpu_split(service.pid), set(tap.joins)
            dash0 = sum(cpu_seconds(c.pid) for c in children)
            events0 = tap.events
            time.sleep(args.seconds)
            t1, cpu1 = time.time(), cpu_split(service.pid)
            dash1 = sum(cpu_seconds(c.pid) for c in children)
            events1 = tap.events
            window = {u: ts for u, ts in tap.joins.items() if u not in joins0 and ts <= t1}
            time.sleep(1.0)  # the last joins reach the dashboards
            seen: list[dict[str, float]] = []
            dropped = 0
            frames = frame_bytes = 0
            for i, child in enumerate(children):
                child.stdin.close()
                child.wait(timeout=60)
                got = json.loads((tmp / f"dash{i}.json").read_text())
                seen += got["seen"]
                dropped += got["dropped"]
                for second, (n, size) in got["traffic"].items():
                    if t0 <= int(second) and int(second) + 1 <= t1:  # whole seconds in the window
                        frames += n
                        frame_bytes += size
            tap.stopped = True
            report_lines = sum(1 for _ in open(tmp / "report.csv"))
            samples, missing = [], 0
            for board in seen:
                for uid, ts in window.items():
                    if uid in board:
                        samples.append(board[uid] - ts)
                    else:
                        missing += 1
            if service.poll() is not None:
                raise SystemExit(f"the service died: see {tmp / 'twistd.log'}")
            whole = int(t1) - int(t0) - 1 if int(t1) > int(t0) + 1 else 1
            return {
                "elapsed": t1 - t0,
                "cpu": (sum(cpu1) - sum(cpu0)) / (t1 - t0),
                "cpu_user": (cpu1[0] - cpu0[0]) / (t1 - t0),
                "cpu_system": (cpu1[1] - cpu0[1]) / (t1 - t0),
                "cpu_per_event_ms": (sum(cpu1) - sum(cpu0)) / max(1, events1 - events0) * 1000,
                "frames_per_s": frames / whole / args.dashboards,
                "bytes_per_frame": frame_bytes / frames if frames else 0.0,
                # All of the service's CPU (AMI, state, Redis too) over the frames it
                # delivered: comparable across machine loads, unlike the latency.
                "cpu_per_frame_us": ((sum(cpu1) - sum(cpu0)) / (t1 - t0))
                / max(1e-9, frames / whole) * 1e6,
                "joins": len(window),
                "events_per_s": (events1 - events0) / (t1 - t0),
                "samples": samples,
                "missing": missing,
                "tap_lag_ms": statistics.median(tap.lag) * 1000 if tap.lag else float("nan"),
                "report_lines": report_lines,
                "dropped": dropped,
                "dashboards_cpu": (dash1 - dash0) / (t1 - t0),
            }
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dashboards-child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--queues", type=int, default=10)
    ap.add_argument("--calls-per-second", type=float, default=3.0, help="new callers, all queues")
    ap.add_argument("--dashboards", type=int, default=500)
    ap.add_argument("--dashboard-procs", type=int, default=2)
    ap.add_argument("--connect-batch", type=int, default=25,
                    help="dashboards of one process that connect together")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds before measuring (default: the agents' logins + 10)")
    ap.add_argument("--login-spacing", type=float, default=0.02,
                    help="simulator: seconds between two agents' logins")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = ap.parse_args()
    if args.dashboards_child:
        port, n, out = args.dashboards_child
        dashboards_child(int(port), int(n), out, max(1, args.connect_batch))
        return
    if args.warmup is None:
        args.warmup = args.agents * args.login_spacing + 10
    args.dashboard_procs = max(1, min(args.dashboard_procs, args.dashboards))
    print(f"$ {command_line()}")
    print(f"{args.agents} agents, {args.queues} queues, {args.calls_per_second:g} new calls/s, "
          f"{args.dashboards} dashboards in {args.dashboard_procs} processes, "
          f"{args.seconds:g} s measured after {args.warmup:g} s; load average {load_average()}")
    cpus, p50s, p99s = [], [], []
    for i in range(args.runs):
        r = run(args)
        s = r["samples"]
        p50, p99 = (pct(s, 50) * 1000, pct(s, 99) * 1000) if s else (float("nan"),) * 2
        cpus.append(r["cpu"])
        p50s.append(p50)
        p99s.append(p99)
        print(f"run {i + 1}: service CPU {r['cpu']:.1%} of one core (user {r['cpu_user']:.1%}, "
              f"system {r['cpu_system']:.1%}; {r['cpu_per_event_ms']:.2f} ms per AMI event); "
              f"each dashboard got {r['frames_per_s']:.1f} frames/s of {r['bytes_per_frame']:,.0f} "
              f"bytes ({r['cpu_per_frame_us']:.1f} µs of service CPU per frame and dashboard); "
              f"event->dashboard p50 "
              f"{p50:.1f} ms, p99 {p99:.1f} ms, max {max(s, default=0) * 1000:.1f} ms "
              f"({len(s):,} samples = {r['joins']} joins x dashboards, {r['missing']} missing); "
              f"AMI stream {r['events_per_s']:,.0f} events/s; tap lag {r['tap_lag_ms']:.1f} ms; "
              f"report {r['report_lines']:,} lines; {r['dropped']} dashboards dropped; the dashboard "
              f"processes used {r['dashboards_cpu']:.0%} of one core", flush=True)
    cpu, p99 = statistics.median(cpus), statistics.median(p99s)
    print(f"median of {args.runs} run(s): CPU {cpu:.1%} (target <= {TARGET_CPU:.0%}: "
          f"{'met' if cpu <= TARGET_CPU else 'NOT met'}), p50 {statistics.median(p50s):.1f} ms, "
          f"p99 {p99:.1f} ms (target <= {TARGET_P99_MS:g} ms: "
          f"{'met' if p99 <= TARGET_P99_MS else 'NOT met'})")


if __name__ == "__main__":
    main()
