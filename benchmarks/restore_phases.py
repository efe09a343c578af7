"""Restore, part by part: this process's CPU for each step of a 10,000-agent start.

Run by hand (never by the tests):

    .venv/bin/python benchmarks/restore_phases.py [--agents 10000] [--rounds 3] [--profile PART]

``benchmarks/restore.py`` times the whole start on the real reactor (wall
clock); this splits the CPU of the same work, in one process, into the parts
that cost: ``load`` (``RedisStore.load()``: the MGETs' replies read, every
record checked, ``Callcenter.restore``), ``ami lists`` (the QueueStatus and
CoreShowChannels answers fed to an ``AMIProtocol`` in 64 KiB chunks, as the
socket gives them), ``snapshot`` (``pbx_snapshot``) and ``reconcile``.  The
fill and the PBX's answers are ``restore.Plan``'s.  CPU time
(``time.process_time``), the least of ``--rounds``, so other load on the
machine weighs little; Redis's own CPU (another process) is not in it.
``--profile PART`` prints that part's cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twisted.internet import defer, task  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402

from benchmarks import restore  # noqa: E402
from benchmarks.common import command_line, load_average, redis_server  # noqa: E402
from callcenter import gcpause  # noqa: E402
from callcenter.ami.events import pbx_snapshot  # noqa: E402
from callcenter.ami.message import Message  # noqa: E402
from callcenter.ami.protocol import AMIProtocol  # noqa: E402
from callcenter.center import Callcenter  # noqa: E402
from callcenter.store.redis_store import RedisStore  # noqa: E402

PARTS = ("load", "ami lists", "snapshot", "reconcile")


def read_list(raw: bytes, name: str) -> list[Message]:
    """A list action's answer through the real protocol, as the socket delivers it."""
    proto = AMIProtocol(lambda m: None)
    proto.makeConnection(StringTransport())
    proto.dataReceived(b"Asterisk Call Manager/11.0.0\r\n")
    got: list[list[Message]] = []
    proto.list_action(name).addCallback(got.append)
    aid = proto.transport.value().split(b"ActionID: ")[1].split(b"\r\n")[0]
    data = raw.replace(b"{AID}", aid)
    for i in range(0, len(data), 65536):
        proto.dataReceived(data[i : i + 65536])
    if not got:
        raise SystemExit(f"{name} did not complete")
    return got[0][1:]


class Timer:
    def __init__(self, profile: str) -> None:
        self.profile = profile
        self.cpu: dict[str, list[float]] = {p: [] for p in PARTS}
        self.prof = cProfile.Profile() if profile else None

    def start(self, part: str) -> None:
        self.part = part
        if self.prof is not None and part == self.profile:
            self.prof.enable()
        self.t = time.process_time()

    def stop(self) -> None:
        self.cpu[self.part].append(time.process_time() - self.t)
        if self.prof is not None:
            self.prof.disable()


async def main(reactor: Any, args: argparse.Namespace) -> None:
    print(f"$ {command_line()}")
    timer = Timer(args.profile)
    with redis_server() as port:
        url = f"redis://127.0.0.1:{port}/0"
        plan = restore.Plan(args.agents, args.queues, float(int(time.time()) - 600),
                            args.short_channels)
        await restore.populate(reactor, url, plan)
        status, show = plan.answers(time.time())
        print(f"{args.agents:,} agents, calls and connections; load average {load_average()}")
        for r in range(args.rounds):
            center = Callcenter(reactor, business_day=restore.DAY)
            store = RedisStore(reactor, url, restore.PREFIX, center)
            timer.start("load")
            await store.load()
            timer.stop()
            store.start()
            await store.flush()
            timer.start("ami lists")
            items, channels = read_list(status, "QueueStatus"), read_list(show, "CoreShowChannels")
            timer.stop()
            objects: list[int] = []
            center.subscribe(lambda ch, seen=objects: seen.append(len(ch.objects)))
            with gcpause.paused():  # as core/resync.py runs these two
                timer.start("snapshot")
                snap = pbx_snapshot(items, channels)
                timer.stop()
                timer.start("reconcile")
                # The step behind Callcenter.reconcile, without its own snapshot.
                center._reconcile_snapshot(snap, set())
                timer.stop()
            await store.flush()
            await store.stop()
            print(f"round {r + 1}: " + ", ".join(
                f"{p} {v[-1] * 1000:.0f} ms" for p, v in timer.cpu.items())
                + f"; {sum(objects)} dashboard objects", flush=True)
    best = {p: min(v) for p, v in timer.cpu.items()}
    print("least CPU of the rounds: " + ", ".join(f"{p} {v * 1000:.0f} ms" for p, v in best.items())
          + f"; total {sum(best.values()) * 1000:.0f} ms")
    if timer.prof is not None:
        pstats.Stats(timer.prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--queues", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", choices=PARTS, default="")
    ap.add_argument("--short-channels", action="store_true",
                    help="CoreShowChannel items with 9 headers, as sessions 1-4 measured")
    a = ap.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, a)))
