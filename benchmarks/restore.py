"""Restore: from start to "reconciled and serving", and what the reconcile writes.

Run by hand (``make bench``; never by the tests):

    .venv/bin/python benchmarks/restore.py [--agents 10000] [--runs 3]

A throw-away ``redis-server`` on a free port is filled by the real service
objects (``Callcenter`` + ``RedisStore``, fed AMI events): ``--agents`` agents,
each on a call with its own caller (so as many calls and connections).  A
scripted PBX in a child process (plain sockets) then answers ``QueueStatus``
and ``CoreShowChannels`` with that same state: each agent a ``QueueMember``
in call, each caller a channel bridged with its agent's leg.

Each run times, in this process on the real reactor: a new ``Callcenter``,
``RedisStore.load()`` (connect, read, check, restore), the dashboard site
listening, an ``AMIClient`` connecting, logging in and the resync
(``CoreShowChannels``, ``QueueStatus``, ``reconcile``) — until the reconcile has
returned and the store has flushed what it caused.  Then it counts what that
reconcile wrote: Redis write commands (``INFO commandstats``, before/after),
dashboard objects and report lines (the ``Changes`` it emitted).  Target:
<= 0.5 s and nothing written.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twisted.internet import defer, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402

from benchmarks import redis_state  # noqa: E402
from benchmarks.common import (  # noqa: E402
    command_line,
    load_average,
    med_range,
    redis_command,
    redis_server,
)
from callcenter.ami.client import AMIClient  # noqa: E402
from callcenter.center import Callcenter  # noqa: E402
from callcenter.kpi import BusinessDay  # noqa: E402
from callcenter.model import DEVICE_STATES  # noqa: E402
from callcenter.report import ReportWriter  # noqa: E402
from callcenter.store.redis_store import RedisStore  # noqa: E402
from callcenter.web import make_site  # noqa: E402

TARGET_SECONDS = 0.5
PREFIX = "restore:"
READS = {"get", "mget", "smembers", "sscan", "scan", "type", "lrange", "ping", "info",
         "select", "auth", "hello", "client", "command", "exists", "keys"}
DAY = BusinessDay((0, 0), ZoneInfo("UTC"))


def _msg(*pairs: tuple[str, object]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in pairs).encode() + b"\r\n"


def pbx_answers(center: Callcenter) -> tuple[bytes, bytes]:
    """QueueStatus and CoreShowChannels items for ``center``'s state (ActionID ``{AID}``)."""
    status_of = {v: k for k, v in DEVICE_STATES.items()}
    members, channels = [], []
    now = time.time()
    for i, (agentid, agent) in enumerate(center.agents.items()):
        for queue in agent.queues:
            member = agent.queues[queue]
            pairs: list[tuple[str, object]] = [
                ("Event", "QueueMember"), ("Queue", queue), ("Name", agentid),
                ("Location", agent.interface), ("StateInterface", agent.interface),
                ("Membership", "dynamic"), ("Penalty", 0), ("CallsTaken", 0), ("LastCall", 0),
                ("LastPause", 0), ("LoginTime", int(now) - 3600),
                ("InCall", 1 if agent.call else 0)]
            if agent.device in status_of:
                pairs.append(("Status", status_of[agent.device]))
            pairs += [("Paused", 1 if member.paused else 0), ("PausedReason", member.reason),
                      ("Wrapuptime", 0),
                      ("ActionID", "{AID}")]
            members.append(_msg(*pairs))
        if agent.call:
            call = center.calls[agent.call]
            bridge = f"bridge-{i}"
            age = max(1, int(now - (call.entered or now)))
            channels.append(_msg(
                ("Event", "CoreShowChannel"), ("ActionID", "{AID}"),
                ("Channel", call.channel or f"Local/caller-{i};2"), ("Uniqueid", call.id),
                ("Application", "Queue"), ("ApplicationData", f"{call.queue},t"),
                ("BridgeId", bridge), ("Duration", time.strftime("%H:%M:%S", time.gmtime(age)))))
            channels.append(_msg(
                ("Event", "CoreShowChannel"), ("ActionID", "{AID}"),
                ("Channel", f"{agent.interface}-{i:08x};1"), ("Uniqueid", f"leg.{i}"),
                ("Application", "AppQueue"), ("ApplicationData", "(Outgoing Line)"),
                ("BridgeId", bridge), ("Duration", time.strftime("%H:%M:%S", time.gmtime(age)))))
    queues = sorted({q for a in center.agents.values() for q in a.queues})
    params = [_msg(("Event", "QueueParams"), ("Queue", q), ("Max", 0), ("Strategy", "rrmemory"),
                   ("Calls", 0), ("Holdtime", 0), ("TalkTime", 0), ("Completed", 0),
                   ("Abandoned", 0), ("ServiceLevel", 0), ("ServicelevelPerf", 0),
                   ("ServicelevelPerf2", 0), ("Weight", 0), ("ActionID", "{AID}"))
              for q in queues]
    status = (_msg(("Response", "Success"), ("ActionID", "{AID}"), ("EventList", "start"),
                   ("Message", "Queue status will follow"))
              + b"".join(params + members)
              + _msg(("Event", "QueueStatusComplete"), ("ActionID", "{AID}"),
                     ("EventList", "Complete"), ("ListItems", len(params) + len(members))))
    show = (_msg(("Response", "Success"), ("ActionID", "{AID}"), ("EventList", "start"),
                 ("Message", "Channels will follow"))
            + b"".join(channels)
            + _msg(("Event", "CoreShowChannelsComplete"), ("ActionID", "{AID}"),
                   ("EventList", "Complete"), ("ListItems", len(channels))))
    return status, show


def serve_pbx(fd: int, status_file: str, show_file: str) -> None:
    """The scripted PBX (child process): Login, FullyBooted, Ping, the two lists."""
    status, show = Path(status_file).read_bytes(), Path(show_file).read_bytes()
    print("READY", flush=True)
    with socket.socket(fileno=fd) as listener:
        while True:
            conn, _ = listener.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.sendall(b"Asterisk Call Manager/11.0.0\r\n")
                buf = b""
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    buf += data
                    while b"\r\n\r\n" in buf:
                        action, buf = buf.split(b"\r\n\r\n", 1)
                        fields = dict(re.findall(rb"(?m)^([^:\r\n]+): ([^\r\n]*)", action))
                        name = fields.get(b"Action", b"").lower()
                        aid = fields.get(b"ActionID", b"")
                        if name == b"queuestatus":
                            conn.sendall(status.replace(b"{AID}", aid))
                        elif name == b"coreshowchannels":
                            conn.sendall(show.replace(b"{AID}", aid))
                        elif name == b"login":
                            conn.sendall(_msg(("Response", "Success"), ("ActionID", aid.decode()),
                                              ("Message", "Authentication accepted"))
                                         + _msg(("Event", "FullyBooted"),
                                                ("Privilege", "system,all"),
                                                ("Status", "Fully Booted")))
                        else:
                            conn.sendall(_msg(("Response", "Success"), ("ActionID", aid.decode()),
                                              ("Message", "benchmark")))


def _writes(port: int) -> dict[str, int]:
    out = {}
    for line in redis_command(port, "INFO", "commandstats").splitlines():
        m = re.match(r"cmdstat_([a-z|]+):calls=(\d+)", line)
        if m and m.group(1) not in READS:
            out[m.group(1)] = int(m.group(2))
    return out


async def populate(reactor: Any, url: str, n: int) -> Callcenter:
    redis_state.T0 = float(int(time.time()) - 600)  # today, a few minutes ago
    redis_state.QUEUE = "q-restore"
    bench = redis_state.Bench(reactor, url, PREFIX)
    await bench.store.load()
    bench.store.start()
    await bench.populate(n)
    await bench.store.stop()
    return bench.center


async def one_run(reactor: Any, url: str, redis_port: int, pbx_port: int, tmp: str) -> dict:
    report = ReportWriter(os.path.join(tmp, "report.csv"))
    report.open()
    counts = {"objects": 0, "lines": 0}
    reconciled: defer.Deferred[None] = defer.Deferred()
    t0 = time.perf_counter()
    center = Callcenter(reactor, business_day=DAY)
    store = RedisStore(reactor, url, PREFIX, center, report)
    await store.load()
    store.start()
    await store.flush()  # the load's own clean-up transaction (outbox) belongs to the load
    t_loaded = time.perf_counter()
    before = _writes(redis_port)

    def count(ch: Any) -> None:
        counts["objects"] += len(ch.objects)
        counts["lines"] += len(ch.transitions)  # the store writes them to the report

    center.subscribe(count)
    site = make_site(center, static_dir=str(ROOT / "static"), reactor=reactor)
    site.noisy = False
    web = reactor.listenTCP(0, site, interface="127.0.0.1")
    center.when_reconciled().chainDeferred(reconciled)
    client = AMIClient(reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", pbx_port), "bench",
                       "bench", ping_interval=0)
    center.attach(client)
    client.startService()
    await reconciled
    await store.flush()
    elapsed = time.perf_counter() - t0
    after = _writes(redis_port)
    written = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    result = {"seconds": elapsed, "load": t_loaded - t0, "agents": len(center.agents),
              "calls": len(center.calls), "connections": len(center.connections),
              "written": written, **counts}
    await client.stopService()
    await store.stop()
    await web.stopListening()
    report.close()
    return result


async def main(reactor: Any, args: argparse.Namespace) -> None:
    print(f"$ {command_line()}")
    with redis_server() as redis_port, tempfile.TemporaryDirectory(prefix="bench-restore-") as tmp:
        url = f"redis://127.0.0.1:{redis_port}/0"
        center = await populate(reactor, url, args.agents)
        status, show = pbx_answers(center)
        Path(tmp, "status.ami").write_bytes(status)
        Path(tmp, "show.ami").write_bytes(show)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        pbx = subprocess.Popen(
            [sys.executable, __file__, "--serve-fd", str(listener.fileno()),
             str(Path(tmp, "status.ami")), str(Path(tmp, "show.ami"))],
            pass_fds=[listener.fileno()], stdout=subprocess.PIPE, text=True)
        pbx_port = listener.getsockname()[1]
        listener.close()
        try:
            if pbx.stdout.readline().strip() != "READY":  # not timed: Asterisk is up already
                raise SystemExit("the scripted PBX did not start")
            print(f"Redis holds {len(center.agents):,} agents, {len(center.calls):,} calls, "
                  f"{len(center.connections):,} connections; the PBX answers the same "
                  f"({len(status) + len(show):,} bytes of lists); load average {load_average()}")
            runs = []
            for i in range(args.runs):
                r = await one_run(reactor, url, redis_port, pbx_port, tmp)
                runs.append(r)
                print(f"run {i + 1}: reconciled and serving in {r['seconds']:.3f} s "
                      f"(Redis load {r['load']:.3f} s); {r['agents']:,} agents, {r['calls']:,} "
                      f"calls, {r['connections']:,} connections; the reconcile wrote: "
                      f"Redis {sum(r['written'].values())} commands {r['written'] or ''}, "
                      f"{r['objects']:,} dashboard objects, {r['lines']:,} report lines",
                      flush=True)
        finally:
            pbx.kill()
            pbx.wait()
    secs = [r["seconds"] for r in runs]
    nothing = all(not r["written"] and not r["objects"] and not r["lines"] for r in runs)
    print(f"restore, median (range) of {args.runs}: {med_range(secs, '{:.3f}')} s "
          f"(target <= {TARGET_SECONDS} s: "
          f"{'met' if statistics.median(secs) <= TARGET_SECONDS else 'NOT met'}); "
          f"reconcile writes nothing: {'yes' if nothing else 'NO'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=10_000, help="agents = calls = connections")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_fd is not None:
        serve_pbx(a.serve_fd, *a.files)
    else:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor, a)))
