"""One ``/metrics`` scrape of a synthetic centre, in CPU time (process_time).

The centre is built from AMI events on a fake clock: ``--agents`` agents,
each a member of ``--per-agent`` of the ``--queues`` queues (every fifth one
paused), and ``--waiting`` callers waiting.  The scrape is the service's own
(``make_registry`` + ``generate_latest``), run ``--runs`` times.

    .venv/bin/python benchmarks/metrics_scrape.py --per-agent 50
    .venv/bin/python benchmarks/metrics_scrape.py --per-agent 50 --agent-series
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from zoneinfo import ZoneInfo

from prometheus_client import generate_latest
from twisted.internet.task import Clock

from callcenter.ami.message import Message
from callcenter.center import Callcenter
from callcenter.kpi import BusinessDay
from callcenter.metrics.service import make_registry

T0 = 1795665000.0


def ev(name: str, ts: float, **headers: str) -> Message:
    pairs = [("Event", name), ("Privilege", "agent,all"), ("Timestamp", f"{ts:.6f}")]
    pairs.extend(headers.items())
    return Message(pairs)


def build(agents: int, queues: int, per_agent: int, waiting: int) -> Callcenter:
    clock = Clock()
    clock.advance(T0)
    c = Callcenter(clock, sla=10, business_day=BusinessDay((0, 0), ZoneInfo("UTC")))
    names = [f"q-{i:02d}" for i in range(queues)]
    t = T0
    for a in range(agents):
        agent = str(10000 + a)
        for k in range(per_agent):
            q = names[(a + k) % queues]
            c.handle_event(ev("QueueMemberAdded", t, Queue=q, MemberName=agent,
                              Interface=f"Local/{agent}@agent-connect", Paused="1" if a % 5 == 0 else "0",
                              PausedReason="", InCall="0", Status="1"))
    for w in range(waiting):
        uid = f"{int(T0)}.{w}"
        q = names[w % queues]
        c.handle_event(ev("UserEvent", t, UserEvent="CALLER", Uniqueid=uid, CallerIDNum=f"555{w}"))
        c.handle_event(ev("QueueCallerJoin", t, Channel=f"Local/113@public-{w:08x};2", CallerIDNum=f"555{w}",
                          Uniqueid=uid, Queue=q, Position="1", Count="1"))
    clock.advance(30)
    return c


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=2000)
    p.add_argument("--queues", type=int, default=50)
    p.add_argument("--per-agent", type=int, default=5, help="queues each agent is a member of")
    p.add_argument("--waiting", type=int, default=500)
    p.add_argument("--agent-series", action="store_true")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    c = build(a.agents, a.queues, a.per_agent, a.waiting)
    registry, figures, _links = make_registry(c, agent_series=a.agent_series)
    figures.start()
    out = generate_latest(registry)
    lines = out.count(b"\n")
    print(f"{len(c.agents)} agents, {a.queues} queues, {len(c.callbook.calls)} calls; "
          f"{lines} lines, {len(out)} bytes")
    if a.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(a.runs):
            generate_latest(registry)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(18)
        return
    times = []
    for _ in range(a.runs):
        t = time.process_time()
        generate_latest(registry)
        times.append(time.process_time() - t)
    times.sort()
    print(f"CPU per scrape: median {times[len(times)//2]*1e3:.1f} ms, min {times[0]*1e3:.1f}, max {times[-1]*1e3:.1f}")


if __name__ == "__main__":
    main()
