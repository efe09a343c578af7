"""Redis write cost per AMI event, and restore time, as the live state grows.

Usage: .venv/bin/python benchmarks/redis_state.py [--events 3000] [--sizes 10,1000,10000]

Starts its own throw-away redis-server on a free loopback port.  For each size
N the Callcenter holds N agents, each connected to one of N live calls (N
connections); then it times a steady cycle of events (AgentComplete,
QueueCallerJoin, AgentConnect) that each touch one agent, one call and one
connection:

- ``build``: the store's synchronous work per event (turn the Changes into one
  MULTI/EXEC and hand it to the transport), measured around its subscriber;
- ``round trip``: from then until Redis's reply to the EXEC was read (loopback,
  through the reactor);
- ``write cost`` = build + round trip, per event; ``Redis µs/EXEC`` is Redis's
  own time per transaction (INFO commandstats); ``center`` is the Callcenter's
  own work for the event, for comparison (not part of the write cost).

Sizes are measured in interleaved rounds, so load from elsewhere on the
machine hits them alike.  Flat means: p99 at 10,000 within 1.5x of p99 at 10.  Finally it times a cold
start: load() of 10,000 agents + 10,000 calls + 10,000 connections.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

from benchmarks.common import command_line, load_average  # noqa: E402
from callcenter.ami.message import Message  # noqa: E402
from callcenter.center import Callcenter  # noqa: E402
from callcenter.kpi import BusinessDay  # noqa: E402
from callcenter.store import connection as conn_mod  # noqa: E402
from callcenter.store.redis_store import UP, RedisStore  # noqa: E402

T0 = 1795665000.0
QUEUE = "q-bench"


def _hiredis_candidate() -> type:
    """txredisapi's own hiredis protocol, transactions through its public execute_command
    (``--client hiredis``: the alternative to the shipped adapter, for comparison)."""
    import txredisapi

    if txredisapi.hiredis is None:
        raise SystemExit("--client hiredis needs the hiredis package: pip install hiredis")

    class Candidate(txredisapi.HiredisProtocol):
        def transaction(self, commands: list[list[bytes]]) -> defer.Deferred:
            if not self.connected:
                raise conn_mod.ConnectionError("Not connected")
            queued = [self.execute_command(b"MULTI", apply_timeout=False)]
            queued += [self.execute_command(*c, apply_timeout=False) for c in commands]
            for d in queued:
                d.addErrback(lambda _: None)  # EXEC reports a refused command as EXECABORT
            return self.execute_command(b"EXEC")

    return Candidate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ev(name: str, t: float, *pairs: tuple[str, str]) -> Message:
    return Message.of(("Event", name), ("Timestamp", f"{t:.6f}"), ("Queue", QUEUE), *pairs)


def _agent(i: int) -> tuple[tuple[str, str], ...]:
    return (("MemberName", f"a{i:05d}"), ("Interface", f"Local/a{i:05d}@agent-connect"))


def _call(uid: str) -> tuple[tuple[str, str], ...]:
    return (("Uniqueid", uid), ("Channel", f"Local/113@public-{uid};2"), ("CallerIDNum", uid))


class Bench:
    def __init__(self, reactor: Any, url: str, prefix: str) -> None:
        self.reactor = reactor
        self.url = url
        self.clock = Clock()
        self.clock.advance(T0)
        self.center = Callcenter(self.clock, business_day=BusinessDay((0, 0), ZoneInfo("UTC")))
        self.prefix = prefix
        self.store = RedisStore(reactor, url, prefix, self.center)
        self.build: list[float] = []
        self.n_calls = 0
        self.current: dict[int, str] = {}

    def timed_subscriber(self) -> None:
        inner = self.store._on_changes  # measured from outside: the store's real subscriber

        def timed(ch: Any) -> None:
            t = time.perf_counter()
            inner(ch)
            self.build.append(time.perf_counter() - t)

        self.store._on_changes = timed  # type: ignore[method-assign]

    def event(self, msg: Message) -> None:
        self.clock.advance(0.001)
        self.center.handle_event(msg)

    def new_call(self, agent: int) -> list[Message]:
        self.n_calls += 1
        uid = f"{T0:.0f}.{self.n_calls}"
        self.current[agent] = uid
        t = self.clock.seconds()
        return [
            _ev("QueueCallerJoin", t, *_call(uid), ("Position", "1")),
            _ev("AgentConnect", t, *_call(uid), *_agent(agent), ("HoldTime", "3")),
        ]

    def end_call(self, agent: int) -> Message:
        uid = self.current[agent]
        t = self.clock.seconds()
        return _ev(
            "AgentComplete", t, *_call(uid), *_agent(agent), ("HoldTime", "3"), ("TalkTime", "20")
        )

    async def populate(self, n: int) -> None:
        for i in range(n):
            self.event(_ev("QueueMemberAdded", self.clock.seconds(), *_agent(i), ("Paused", "0")))
            for msg in self.new_call(i):
                self.event(msg)
            if i % 500 == 0:
                await self.store.flush()
        await self.store.flush()
        assert len(self.center.agents) == len(self.center.calls) == n
        assert len(self.center.connections) == n

    async def measure(self, events: int) -> tuple[list[float], list[float], list[float]]:
        """Per event: the store's build time, the round trip to EXEC's reply, the center's time."""
        builds: list[float] = []
        rtts: list[float] = []
        centers: list[float] = []
        n = len(self.center.agents)
        k = 0
        while len(rtts) < events:
            agent = k % n
            k += 1
            for msg in [self.end_call(agent), *self.new_call(agent)]:
                self.build.clear()
                t0 = time.perf_counter()
                self.event(msg)
                t1 = time.perf_counter()
                await self.store.flush()
                rtts.append(time.perf_counter() - t1)
                builds.append(sum(self.build))
                centers.append(t1 - t0 - builds[-1])
        return builds, rtts, centers


def _exec_usec(redis_cli: list[str]) -> tuple[int, float]:
    out = subprocess.run([*redis_cli, "INFO", "commandstats"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("cmdstat_exec:"):
            fields = dict(kv.split("=") for kv in line.split(":", 1)[1].split(","))
            return int(fields["calls"]), float(fields["usec"])
    return 0, 0.0


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _us(x: float) -> str:
    return f"{x * 1e6:8.1f}"


async def main(reactor: Any, args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="bench-redis-")
    port = _free_port()
    server = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
        ],
        stdout=subprocess.DEVNULL,
    )
    cli = ["redis-cli", "-p", str(port)]
    try:
        for _ in range(200):
            if subprocess.run([*cli, "PING"], capture_output=True).stdout.strip() == b"PONG":
                break
            time.sleep(0.02)
        url = f"redis://127.0.0.1:{port}/0"
        print(f"$ {command_line()}  [client: {args.client}; load average {load_average()}]")
        print(
            f"python {sys.version.split()[0]}, redis-server on 127.0.0.1:{port}, "
            f"{args.events} measured events per size\n"
        )
        # Every size lives at once (its own prefix); measured in interleaved
        # rounds so that load from elsewhere on the machine hits them alike.
        benches: dict[int, Bench] = {}
        for n in args.sizes:
            bench = Bench(reactor, url, f"bench{n}:")
            await bench.store.load()
            bench.timed_subscriber()
            bench.store.start()
            await bench.populate(n)
            await bench.measure(300)  # warm-up
            benches[n] = bench
        builds: dict[int, list[float]] = {n: [] for n in args.sizes}
        rtts: dict[int, list[float]] = {n: [] for n in args.sizes}
        centers: dict[int, list[float]] = {n: [] for n in args.sizes}
        redis_us: dict[int, list[float]] = {n: [] for n in args.sizes}
        cpus: dict[int, list[float]] = {n: [] for n in args.sizes}
        per_round = max(1, args.events // args.rounds)
        for _ in range(args.rounds):
            for n, bench in benches.items():
                gc.collect()
                calls0, usec0 = _exec_usec(cli)
                cpu0 = time.process_time()
                b, r, c = await bench.measure(per_round)
                cpus[n].append((time.process_time() - cpu0) / len(r))
                calls1, usec1 = _exec_usec(cli)
                builds[n] += b
                rtts[n] += r
                centers[n] += c
                redis_us[n].append((usec1 - usec0) / max(1, calls1 - calls0))
        cost = {n: [b + r for b, r in zip(builds[n], rtts[n], strict=True)] for n in args.sizes}
        print("Redis write cost per event, µs (build + round trip to EXEC's reply):")
        print(
            "live agents+calls |  build mean   p99 | round trip mean   p99 |"
            "  write cost mean   p99 | Redis µs/EXEC | center mean"
        )
        for n in args.sizes:
            print(
                f"{n:8,} + {n:<7,}  | {_us(statistics.mean(builds[n]))} {_us(_pct(builds[n], 99))} |"
                f"      {_us(statistics.mean(rtts[n]))} {_us(_pct(rtts[n], 99))} |"
                f"       {_us(statistics.mean(cost[n]))} {_us(_pct(cost[n], 99))} |"
                f" {statistics.mean(redis_us[n]):13.1f} | {_us(statistics.mean(centers[n]))}"
            )
        print("this process's CPU per event (center + store + reply parsing), µs: " + ", ".join(
            f"{n:,}: {_us(statistics.median(cpus[n])).strip()}" for n in args.sizes))
        lo, hi = min(args.sizes), max(args.sizes)
        ratio = _pct(cost[hi], 99) / _pct(cost[lo], 99)
        print(
            f"\np99 of the write cost, {hi:,} vs {lo:,}: {ratio:.2f}x (target <= 1.5x); "
            f"build alone {_pct(builds[hi], 99) / _pct(builds[lo], 99):.2f}x"
        )
        for bench in benches.values():
            await bench.store.stop()
        last = benches[hi]

        # Cold start on the biggest state, which the last run left in Redis.
        clock = Clock()
        clock.advance(last.clock.seconds())
        center = Callcenter(clock, business_day=BusinessDay((0, 0), ZoneInfo("UTC")))
        store = RedisStore(reactor, url, last.prefix, center)
        t = time.perf_counter()
        await store.load()
        loaded = time.perf_counter() - t
        await store.flush()
        assert store.state == UP
        print(
            f"\nrestore at start: {len(center.agents):,} agents + {len(center.calls):,} calls + "
            f"{len(center.connections):,} connections in {loaded:.3f} s "
            f"(connect, read, check, Callcenter.restore; target < 1 s)"
        )
        await store.stop()
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="measured events per size")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10, 1000, 10000]
    )
    parser.add_argument("--client", choices=["shipped", "hiredis"], default="shipped")
    a = parser.parse_args()
    if a.client != "shipped":
        conn_mod._Protocol = _hiredis_candidate()  # type: ignore[misc]
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, a)))
