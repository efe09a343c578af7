"""Restore: from start to "reconciled and serving", and what the reconcile writes.

Run by hand (``make bench``; never by the tests):

    .venv/bin/python benchmarks/restore.py [--agents 10000] [--runs 3]

A throw-away ``redis-server`` on a free port is filled by the real service
objects (``Callcenter`` + ``RedisStore``, fed AMI events): ``--agents`` agents
over ``--queues`` queues, each on a call with its own caller (so as many calls
and connections), half of them after an earlier call that ended.  A scripted
PBX in a child process (plain sockets) then answers ``QueueStatus`` and
``CoreShowChannels`` as Asterisk would after those events (LoginTime,
LastCall, CallsTaken, InCall, device state; each caller's channel bridged
with its agent's leg).  Both the fill and the answers come from one
description of the centre (``Plan``), never from the service's own state.

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

from benchmarks.common import (  # noqa: E402
    command_line,
    load_average,
    med_range,
    redis_command,
    redis_server,
)
from callcenter.ami.client import AMIClient  # noqa: E402
from callcenter.ami.message import Message  # noqa: E402
from callcenter.center import Callcenter  # noqa: E402
from callcenter.kpi import BusinessDay  # noqa: E402
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


class Plan:
    """The centre the benchmark builds, described once, independently of the
    service: the fill's AMI events and the scripted PBX's answers both come
    from here (never from a ``Callcenter``'s state), so "the PBX answers the
    same state" means what a real Asterisk would answer after those events.

    Agent ``i`` (``a00000``...) logs into queue ``q-restore-<i % queues>`` at
    ``login(i)``; every other agent first takes one call that ends (its
    ``LastCall``, ``CallsTaken`` 1); then each agent talks to its own caller,
    who waited 3 s.  Wrap-up is 0 (as after app_queue's default), so nobody
    is in wrap-up at the restart."""

    def __init__(self, agents: int, queues: int, t0: float, short_channels: bool = False) -> None:
        self.n, self.queues, self.t0 = agents, max(1, queues), t0
        # Sessions 1-4 answered CoreShowChannel with 9 of Asterisk's 20 headers.
        self.short_channels = short_channels

    def agent(self, i: int) -> tuple[str, str, str]:
        """(member name, interface, queue)"""
        return f"a{i:05d}", f"Local/a{i:05d}@agent-connect", f"q-restore-{i % self.queues}"

    def start(self, i: int) -> float:
        return self.t0 + i * 0.05  # every agent's own 50 ms of events

    def login(self, i: int) -> int:
        return int(self.start(i))  # app_queue's LoginTime: time(NULL) at the add

    def earlier(self, i: int) -> bool:
        return i % 2 == 0

    def last_call(self, i: int) -> int:
        return int(self.start(i) + 0.02) if self.earlier(i) else 0

    def uid(self, i: int, n: int) -> str:
        return f"{self.t0:.0f}.{2 * i + n}"

    def caller(self, i: int, n: int) -> str:
        return f"Local/113@public-{self.uid(i, n)};2"

    def events(self, i: int) -> list[tuple[float, tuple[tuple[str, object], ...]]]:
        """Agent ``i``'s part of the fill: (time, AMI event headers)."""
        name, iface, queue = self.agent(i)
        t = self.start(i)
        member = (("Queue", queue), ("MemberName", name), ("Interface", iface),
                  ("StateInterface", iface))
        out: list[tuple[float, tuple[tuple[str, object], ...]]] = [(t, (
            ("Event", "QueueMemberAdded"), *member, ("Membership", "dynamic"), ("Penalty", 0),
            ("CallsTaken", 0), ("LastCall", 0), ("LastPause", 0), ("LoginTime", self.login(i)),
            ("InCall", 0), ("Status", 1), ("Paused", 0), ("PausedReason", ""),
            ("Wrapuptime", 0)))]

        def call(n: int, t: float, end: bool) -> None:
            who = (("Uniqueid", self.uid(i, n)), ("Channel", self.caller(i, n)),
                   ("CallerIDNum", self.uid(i, n)))
            out.append((t, (("Event", "QueueCallerJoin"), ("Queue", queue), *who,
                            ("Position", 1))))
            out.append((t + 0.003, (("Event", "AgentConnect"), *member, *who, ("HoldTime", 3),
                                    ("RingTime", 1))))
            if end:
                out.append((t + 0.02, (("Event", "AgentComplete"), *member, *who,
                                       ("HoldTime", 3), ("TalkTime", 17),
                                       ("Reason", "agent"))))

        if self.earlier(i):
            call(0, t + 0.001, end=True)
        call(1, t + 0.03, end=False)
        out.append((t + 0.034, (("Event", "QueueMemberStatus"), *member, ("InCall", 1),
                                ("Status", 2), ("Paused", 0))))
        return out

    def answers(self, now: float) -> tuple[bytes, bytes]:
        """QueueStatus and CoreShowChannels at ``now`` (ActionID ``{AID}``)."""
        members, channels = [], []
        completed: dict[str, int] = {}
        for i in range(self.n):
            name, iface, queue = self.agent(i)
            taken = 1 if self.earlier(i) else 0
            completed[queue] = completed.get(queue, 0) + taken
            members.append(_msg(
                ("Event", "QueueMember"), ("Queue", queue), ("Name", name),
                ("Location", iface), ("StateInterface", iface), ("Membership", "dynamic"),
                ("Penalty", 0), ("CallsTaken", taken), ("LastCall", self.last_call(i)),
                ("LastPause", 0), ("LoginTime", self.login(i)), ("InCall", 1), ("Status", 2),
                ("Paused", 0), ("PausedReason", ""), ("Wrapuptime", 0), ("ActionID", "{AID}")))
            bridge = f"bridge-{i}"
            age = time.strftime("%H:%M:%S", time.gmtime(max(0, int(now - self.start(i)))))
            # Every header Asterisk 22 sends, in its order (REFERENCE.md, CoreShowChannel).
            channel = _short_channel if self.short_channels else _channel
            channels.append(channel(self.caller(i, 1), self.uid(i, 1), self.uid(i, 1), name,
                                    "callcenter", "Queue", f"{queue},t", age, bridge))
            channels.append(channel(f"{iface}-{i:08x};1", f"leg.{i}", "", self.uid(i, 1),
                                    "agent-connect", "AppQueue", "(Outgoing Line)", age, bridge))
        params = [_msg(("Event", "QueueParams"), ("Queue", q), ("Max", 0),
                       ("Strategy", "rrmemory"), ("Calls", 0), ("Holdtime", 3),
                       ("TalkTime", 17 if completed[q] else 0), ("Completed", completed[q]),
                       ("Abandoned", 0), ("ServiceLevel", 0), ("ServicelevelPerf", 0),
                       ("ServicelevelPerf2", 0), ("Weight", 0), ("ActionID", "{AID}"))
                  for q in sorted(completed)]
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


def _channel(channel: str, uid: str, cid: str, connected: str, context: str, app: str,
             data: str, age: str, bridge: str) -> bytes:
    return _msg(
        ("Event", "CoreShowChannel"), ("ActionID", "{AID}"), ("Channel", channel),
        ("ChannelState", 6), ("ChannelStateDesc", "Up"), ("CallerIDNum", cid),
        ("CallerIDName", "<unknown>"), ("ConnectedLineNum", connected),
        ("ConnectedLineName", "<unknown>"), ("Language", "en"), ("AccountCode", ""),
        ("Context", context), ("Exten", "s"), ("Priority", 1), ("Uniqueid", uid),
        ("Linkedid", uid), ("Application", app), ("ApplicationData", data), ("Duration", age),
        ("BridgeId", bridge))


def _short_channel(channel: str, uid: str, cid: str, connected: str, context: str, app: str,
                   data: str, age: str, bridge: str) -> bytes:
    """The 9-header CoreShowChannel of sessions 1-4 (``--short-channels``)."""
    return _msg(
        ("Event", "CoreShowChannel"), ("ActionID", "{AID}"), ("Channel", channel),
        ("Uniqueid", uid), *((("CallerIDNum", cid),) if cid else ()), ("Application", app),
        ("ApplicationData", data), ("BridgeId", bridge), ("Duration", age))


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


async def populate(reactor: Any, url: str, plan: Plan) -> Callcenter:
    """The real service objects fed the plan's events on a Clock, into Redis."""
    clock = task.Clock()
    clock.advance(plan.t0)
    center = Callcenter(clock, business_day=DAY)
    store = RedisStore(reactor, url, PREFIX, center)
    await store.load()
    store.start()
    for i in range(plan.n):
        for t, pairs in plan.events(i):
            clock.advance(max(0.0, t - clock.seconds()))
            center.handle_event(Message.of(*((k, str(v)) for k, v in pairs),
                                           ("Timestamp", f"{t:.6f}")))
        if i % 500 == 0:
            await store.flush()
    await store.flush()
    await store.stop()
    if not len(center.agents) == len(center.calls) == len(center.connections) == plan.n:
        raise SystemExit(f"the fill did not give {plan.n} agents, calls and connections")
    return center


async def one_run(reactor: Any, url: str, redis_port: int, pbx_port: int, tmp: str) -> dict:
    report = ReportWriter(os.path.join(tmp, "report.csv"))
    report.open()
    counts = {"objects": 0, "lines": 0}
    reconciled: defer.Deferred[None] = defer.Deferred()
    t0, c0 = time.perf_counter(), time.process_time()
    center = Callcenter(reactor, business_day=DAY)
    store = RedisStore(reactor, url, PREFIX, center, report)
    await store.load()
    store.start()
    await store.flush()  # the load's own clean-up transaction (outbox) belongs to the load
    t_loaded, c_loaded = time.perf_counter(), time.process_time()
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
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = _writes(redis_port)
    written = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    result = {"seconds": elapsed, "load": t_loaded - t0, "cpu": cpu, "load_cpu": c_loaded - c0,
              "agents": len(center.agents),
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
        plan = Plan(args.agents, args.queues, float(int(time.time()) - 600),  # today
                    args.short_channels)
        center = await populate(reactor, url, plan)
        status, show = plan.answers(time.time())
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
                      f"(Redis load {r['load']:.3f} s); this process's CPU {r['cpu']:.3f} s "
                      f"(load {r['load_cpu']:.3f} s); {r['agents']:,} agents, {r['calls']:,} "
                      f"calls, {r['connections']:,} connections; the reconcile wrote: "
                      f"Redis {sum(r['written'].values())} commands {r['written'] or ''}, "
                      f"{r['objects']:,} dashboard objects, {r['lines']:,} report lines",
                      flush=True)
        finally:
            pbx.kill()
            pbx.wait()
    secs = [r["seconds"] for r in runs]
    cpus = [r["cpu"] for r in runs]
    nothing = all(not r["written"] and not r["objects"] and not r["lines"] for r in runs)
    print(f"restore, median (range) of {args.runs}: {med_range(secs, '{:.3f}')} s "
          f"(target <= {TARGET_SECONDS} s: "
          f"{'met' if statistics.median(secs) <= TARGET_SECONDS else 'NOT met'}); "
          f"CPU {med_range(cpus, '{:.3f}')} s; "
          f"reconcile writes nothing: {'yes' if nothing else 'NO'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=10_000, help="agents = calls = connections")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--queues", type=int, default=10, help="queues the agents are spread over")
    ap.add_argument("--short-channels", action="store_true",
                    help="CoreShowChannel items with 9 headers, as sessions 1-4 measured "
                         "(default: all 20 that Asterisk 22 sends)")
    ap.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_fd is not None:
        serve_pbx(a.serve_fd, *a.files)
    else:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor, a)))
