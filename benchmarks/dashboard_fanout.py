"""Dashboard fan-out: AMI event on the wire → WebSocket frame at every dashboard.

Run by hand (not a test):  .venv/bin/python benchmarks/dashboard_fanout.py
    [--dashboards 1,100,500] [--rate 1000] [--seconds 10] [--probe-every 10]

Two processes, everything on loopback:

* the server (this file with ``--serve``): the real pipeline — ``AMIClient``
  → ``Callcenter`` → ``make_site``, with a ``RedisStore`` on a throw-away
  ``redis-server`` and the report file — wired as callcenter/service.py does;
  it starts with a realistic state (``--agents`` agents, ``--calls`` callers
  waiting: what the fake PBX's ``QueueStatus`` answer holds);
* the driver (this process, plain sockets + selectors, no Twisted, so it costs
  little CPU): a fake PBX that answers Login/Ping/resync and writes
  ``QueueCallerJoin``, ``HangupRequest``, ``QueueCallerAbandon``,
  ``QueueCallerLeave`` per caller (as Asterisk sends an abandon) at ``--rate`` events/s,
  and N raw WebSocket clients that say HELLO and then only scan the byte
  stream for probe markers (server frames are unmasked, so the JSON is
  visible as is).

Every ``--probe-every``-th event is a join whose caller id is a probe marker;
its latency is taken from just after the PBX socket write to the first time
each client's socket yields the marker.  Time is CLOCK_MONOTONIC, shared by
both processes.  Memory per dashboard is the server's RSS growth from 0 to N
connected idle dashboards (after HELLO), divided by N.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
ROOT = os.path.dirname(HERE)
QUEUE = "q-bench"
PROBE = re.compile(rb'"callerid":"P(\d{8})"')
MAX_DASHBOARDS = 4096  # the server admits this many from loopback
SNAPSHOT = re.compile(rb'"agentid":"a\d{4}"|"id":"1794999999\.\d+"')


# ---------------------------------------------------------------- server side


def serve(ami_port: int, redis_url: str, report_path: str) -> None:
    sys.path.insert(0, ROOT)
    from twisted.internet import defer, reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint

    from callcenter.ami.client import AMIClient
    from callcenter.center import Callcenter
    from callcenter.report import ReportWriter
    from callcenter.store.redis_store import RedisStore
    from callcenter.web import make_site
    from callcenter.web.limits import WebLimits

    center = Callcenter(reactor, sla=10)
    report = ReportWriter(report_path)
    report.open()
    store = RedisStore(reactor, redis_url, "fanout:", center, report=report)

    async def start() -> None:
        await store.load()
        store.start()
        ami = AMIClient(reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", ami_port), "bench",
                        "bench")
        center.attach(ami)
        # As service.py wires them: Redis too far behind stops the PBX reader.
        store.add_pressure_hook(lambda full: ami.pause_reading() if full else ami.resume_reading())
        ami.startService()
        # Every dashboard comes from 127.0.0.1: the default per-address limit
        # (32) would close the rest at accept.
        limits = WebLimits(max_connections=MAX_DASHBOARDS + 64, max_per_address=MAX_DASHBOARDS)
        site = make_site(center, static_dir=os.path.join(ROOT, "static"), reactor=reactor,
                         limits=limits)
        site.noisy = False
        port = reactor.listenTCP(0, site, backlog=1024, interface="127.0.0.1")
        print(f"PORT {port.getHost().port}", flush=True)

    defer.ensureDeferred(start()).addErrback(lambda f: (print(f"FAILED {f}"), reactor.stop()))
    reactor.run()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# ---------------------------------------------------------------- driver side


def ami_msg(*pairs: tuple[str, object]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode()


class FakePBX:
    """Just enough Asterisk for AMIClient: Login, FullyBooted, Ping, the resync lists."""

    def __init__(self, sock: socket.socket, agents: int = 0, calls: int = 0) -> None:
        self.sock = sock
        self.agents = agents
        self.calls = calls
        self.inbuf = b""
        self.outbuf = b""
        self.ready = False
        self.send(b"Asterisk Call Manager/11.0.0\r\n")

    def send(self, data: bytes) -> None:
        self.outbuf += data
        self.flush()

    def flush(self) -> None:
        while self.outbuf:
            try:
                n = self.sock.send(self.outbuf)
            except BlockingIOError:
                return
            self.outbuf = self.outbuf[n:]

    def readable(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("the server closed the AMI connection")
        self.inbuf += data.replace(b"\r", b"")
        while b"\n\n" in self.inbuf:
            block, self.inbuf = self.inbuf.split(b"\n\n", 1)
            headers = dict(
                line.split(": ", 1) for line in block.decode().split("\n") if ": " in line
            )
            self.action(headers)

    def action(self, h: dict[str, str]) -> None:
        name, aid = h.get("Action", "").lower(), h.get("ActionID", "")
        if name == "login":
            self.send(ami_msg(("Response", "Success"), ("ActionID", aid),
                              ("Message", "Authentication accepted")))
            self.send(ami_msg(("Event", "FullyBooted"), ("Privilege", "system,all"),
                              ("Status", "Fully Booted")))
        elif name in ("queuestatus", "coreshowchannels"):
            done = "QueueStatusComplete" if name == "queuestatus" else "CoreShowChannelsComplete"
            self.send(ami_msg(("Response", "Success"), ("ActionID", aid), ("EventList", "start"),
                              ("Message", "List will follow")))
            items = self.state(aid) if name == "queuestatus" else []
            self.send(b"".join(items))
            self.send(ami_msg(("Event", done), ("ActionID", aid), ("EventList", "Complete"),
                              ("ListItems", len(items))))
            if name == "queuestatus":
                self.ready = True  # the resync is the last thing the service asks for
        else:
            self.send(ami_msg(("Response", "Success"), ("ActionID", aid), ("Ping", "Pong")))


    def state(self, aid: str) -> list[bytes]:
        """The realistic state: agents logged in and available, callers waiting."""
        now = int(time.time())
        items = [ami_msg(
            ("Event", "QueueMember"), ("Queue", QUEUE), ("Name", f"a{i:04d}"),
            ("Location", f"Local/a{i:04d}@agent-connect"), ("Membership", "dynamic"),
            ("Penalty", 0), ("CallsTaken", 0), ("LastCall", 0), ("LastPause", 0),
            ("LoginTime", now - 3600), ("InCall", 0), ("Status", 1), ("Paused", 0),
            ("PausedReason", ""), ("Wrapuptime", 0), ("ActionID", aid))
            for i in range(self.agents)]
        items += [ami_msg(
            ("Event", "QueueEntry"), ("Queue", QUEUE), ("Position", i + 1),
            ("Channel", f"PJSIP/w-{i}"), ("Uniqueid", f"1794999999.{i}"),
            ("CallerIDNum", f"{i:09d}"), ("CallerIDName", "unknown"), ("Wait", 30),
            ("Priority", 0), ("ActionID", aid))
            for i in range(self.calls)]
        return items


class Dashboard:
    KEY = base64.b64encode(b"0123456789abcdef").decode()

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.port = port
        self.buf = b""
        self.state = "handshake"
        self.last_probe = -1
        self.samples: list[float] = []
        self.snapshot: set[bytes] = set()
        self.sock.sendall(
            (f"GET /callcenter HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
             f"Origin: http://127.0.0.1:{port}\r\n"  # the upgrade needs our exact origin
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.KEY}\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        )

    def readable(self, sent: dict[int, float]) -> None:
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return
        if not data:
            raise RuntimeError("the server closed a dashboard")
        now = time.monotonic()
        if self.state == "handshake":
            self.buf += data
            if b"\r\n\r\n" in self.buf:
                head, self.buf = self.buf.split(b"\r\n\r\n", 1)
                assert head.startswith(b"HTTP/1.1 101"), head[:60]
                mask = os.urandom(4)
                self.sock.sendall(bytes([0x81, 0x85]) + mask + bytes(
                    b ^ mask[i % 4] for i, b in enumerate(b"HELLO")))
                self.state = "hello"
            return
        if self.state == "hello":
            self.state = "open"  # the snapshot (first bytes after HELLO)
        data = self.buf + data
        if self.last_probe < 0:  # still the HELLO snapshot: which agents and calls it held
            self.snapshot.update(SNAPSHOT.findall(data))
        for m in PROBE.finditer(data):
            n = int(m.group(1))
            if n > self.last_probe:  # the abandon repeats the join's caller id
                self.last_probe = n
                self.samples.append(now - sent[n])
        self.buf = data[-40:]


def run(n_dashboards: int, rate: float, seconds: float, probe_every: int, agents: int = 0,
        calls: int = 0, redis_port: int = 0, report: str = "") -> dict:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", str(listener.getsockname()[1]),
         "--redis-url", f"redis://127.0.0.1:{redis_port}/0", "--report", report],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"server did not start: {line!r}")
        web_port = int(line.split()[1])
        ami_sock, _ = listener.accept()
        ami_sock.setblocking(False)
        # Each event leaves at once (no Nagle wait for the server's delayed ACK):
        # the measured time is the service's, not TCP's.
        ami_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pbx = FakePBX(ami_sock, agents, calls)
        sel = selectors.DefaultSelector()
        sel.register(ami_sock, selectors.EVENT_READ, pbx)

        def pump(timeout: float, sent: dict[int, float]) -> None:
            for key, _ in sel.select(timeout):
                obj = key.data
                if isinstance(obj, FakePBX):
                    obj.readable()
                else:
                    obj.readable(sent)
            pbx.flush()

        deadline = time.monotonic() + 15
        while not pbx.ready:
            pump(0.05, {})
            if time.monotonic() > deadline:
                raise RuntimeError("the server never resynced with the fake PBX")
        time.sleep(0.5)
        pump(0, {})
        rss_before = rss_kib(server.pid)

        dashboards = []
        for _ in range(n_dashboards):
            d = Dashboard(web_port)
            sel.register(d.sock, selectors.EVENT_READ, d)
            dashboards.append(d)
        deadline = time.monotonic() + 30
        while any(d.state != "open" for d in dashboards):
            pump(0.05, {})
            if time.monotonic() > deadline:
                raise RuntimeError("dashboards did not all get their snapshot")
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            pump(0.05, {})
        rss_after = rss_kib(server.pid)

        # Load: one caller per 4 events (join, hang-up, abandon, leave) at `rate` events/s;
        # a probe about every probe_every-th event (every (probe_every // 4)-th join).
        sent: dict[int, float] = {}
        total = int(rate * seconds)
        cpu0 = cpu_seconds(server.pid), time.process_time()
        t0 = time.monotonic()
        i = 0
        probes = 0
        while i < total:
            now = time.monotonic()
            due = min(total, int((now - t0) * rate) + 1)
            chunk = []
            probe_ids = []
            while i < due:
                # One caller = what Asterisk sends for a caller who joins the end of
                # the queue and hangs up (REFERENCE.md gotcha 20): the join, the
                # hang-up (class call: the session shows hang-ups), the abandon, the
                # leave.  Positions after the `calls` callers waiting from the start.
                call, step = divmod(i, 4)
                uid = f"1795000000.{call}"
                pos = calls + 1
                if step == 0:
                    if call % (probe_every // 4 or 1) == 0:
                        callerid = f"P{probes:08d}"
                        probe_ids.append(probes)
                        probes += 1
                    else:
                        callerid = f"{call:09d}"
                    chunk.append(ami_msg(
                        ("Event", "QueueCallerJoin"), ("Privilege", "agent,all"),
                        ("Channel", f"PJSIP/c-{call}"), ("CallerIDNum", callerid),
                        ("Uniqueid", uid), ("Queue", QUEUE), ("Position", pos), ("Count", pos)))
                elif step == 1:
                    chunk.append(ami_msg(
                        ("Event", "HangupRequest"), ("Privilege", "call,all"),
                        ("Channel", f"PJSIP/c-{call}"), ("Uniqueid", uid)))
                elif step == 2:
                    chunk.append(ami_msg(
                        ("Event", "QueueCallerAbandon"), ("Privilege", "agent,all"),
                        ("Uniqueid", uid), ("Queue", QUEUE), ("Position", pos),
                        ("OriginalPosition", pos), ("HoldTime", 1)))
                else:
                    chunk.append(ami_msg(
                        ("Event", "QueueCallerLeave"), ("Privilege", "agent,all"),
                        ("Channel", f"PJSIP/c-{call}"), ("Uniqueid", uid), ("Queue", QUEUE),
                        ("Position", pos), ("Count", calls)))
                i += 1
            if chunk:
                pbx.send(b"".join(chunk))
                t = time.monotonic()
                for p in probe_ids:
                    sent[p] = t
            pump(max(0.0, t0 + i / rate - time.monotonic()), sent)
        load_time = time.monotonic() - t0
        server_cpu = (cpu_seconds(server.pid) - cpu0[0]) / load_time
        driver_cpu = (time.process_time() - cpu0[1]) / load_time
        drain = time.monotonic() + 3.0
        while time.monotonic() < drain and any(d.last_probe < probes - 1 for d in dashboards):
            pump(0.05, sent)
        elapsed = time.monotonic() - t0

        samples = sorted(s for d in dashboards for s in d.samples)
        expected = probes * n_dashboards
        q = statistics.quantiles(samples, n=100) if len(samples) >= 2 else samples * 99
        return {
            "dashboards": n_dashboards,
            "events": total,
            "rate": rate,
            "elapsed": elapsed,
            "samples": len(samples),
            "missing": expected - len(samples),
            "p50_ms": q[49] * 1000,
            "p90_ms": q[89] * 1000,
            "p99_ms": q[98] * 1000,
            "max_ms": samples[-1] * 1000 if samples else float("nan"),
            "kib_per_dashboard": (rss_after - rss_before) / max(1, n_dashboards),
            "server_rss_mib": rss_kib(server.pid) / 1024,
            "server_cpu": server_cpu,
            "driver_cpu": driver_cpu,
            "snapshot": min((len(d.snapshot) for d in dashboards), default=0),
        }
    finally:
        server.kill()
        server.wait()
        listener.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", type=int, metavar="AMI_PORT", help=argparse.SUPPRESS)
    ap.add_argument("--redis-url", help=argparse.SUPPRESS)
    ap.add_argument("--report", help=argparse.SUPPRESS)
    ap.add_argument("--dashboards", default="1,100,500")
    ap.add_argument("--rate", type=float, default=1000.0, help="AMI events per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--probe-every", type=int, default=10)
    ap.add_argument("--agents", type=int, default=500, help="agents in the starting state")
    ap.add_argument("--calls", type=int, default=200, help="callers waiting at the start")
    ap.add_argument("--runs", type=int, default=3, help="runs per point")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.redis_url, args.report)
        return
    from benchmarks.common import command_line, load_average, med_range, redis_server

    print(f"$ {command_line()}")
    print(f"state: {args.agents} agents, {args.calls} callers waiting; Redis and the report on; "
          f"{args.runs} run(s) per point; load average {load_average()}")
    print(f"{'dashboards':>10} {'events/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'samples':>8} {'missing':>8} {'KiB/dash':>9} {'RSS MiB':>8} "
          f"{'srv CPU':>8} {'drv CPU':>8}")
    summary = []
    points = [int(x) for x in args.dashboards.split(",")]
    if max(points) > MAX_DASHBOARDS:
        raise SystemExit(f"at most {MAX_DASHBOARDS} dashboards (the server's connection limits)")
    for n in points:
        p50s, p99s = [], []
        for _ in range(args.runs):
            with redis_server() as redis_port, tempfile.TemporaryDirectory() as tmp:
                r = run(n, args.rate, args.seconds, args.probe_every, args.agents, args.calls,
                        redis_port, os.path.join(tmp, "report.csv"))
            p50s.append(r["p50_ms"])
            p99s.append(r["p99_ms"])
            print(f"{r['dashboards']:>10} {r['events'] / r['elapsed']:>9.0f} {r['p50_ms']:>8.1f} "
                  f"{r['p90_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['samples']:>8} "
                  f"{r['missing']:>8} {r['kib_per_dashboard']:>9.1f} {r['server_rss_mib']:>8.1f} "
                  f"{r['server_cpu']:>7.0%} {r['driver_cpu']:>7.0%}  (snapshot held "
                  f"{r['snapshot']} agents+calls)", flush=True)
        summary.append((n, p50s, p99s))
    print("\nmedian (range) over the runs of each point:")
    for n, p50s, p99s in summary:
        print(f"{n:>5} dashboards: p50 {med_range(p50s)} ms, p99 {med_range(p99s)} ms")


if __name__ == "__main__":
    main()
