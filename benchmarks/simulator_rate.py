"""How many AMI events per second the simulated PBX can put on the wire.

The model runs on a clock advanced as fast as the CPU allows (``FastClock``,
a ``task.Clock`` that keeps its calls sorted instead of re-sorting them on
every ``callLater``; ``--plain-clock`` for the original) in a busy call
center (many agents, a high arrival rate); the AMI server listens on
loopback on the real reactor, and a client in the same process logs in and
splits and parses every message it receives.  The figure is events received
by that client per wall-clock second, so it includes rendering, formatting,
the TCP write and the client's parsing, all on one core (one process).

    .venv/bin/python benchmarks/simulator_rate.py [--seconds 10] [--agents 120]
        [--calls-per-minute 60] [--queues q-callcenter,q-support]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twisted.internet import defer, protocol, reactor, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402

from callcenter.ami.message import Splitter, format_action, parse_message  # noqa: E402
from callcenter.simulator import start_simulator  # noqa: E402
from callcenter.simulator.clock import FastClock, run_for  # noqa: E402


class Counter(protocol.Protocol):
    def __init__(self) -> None:
        self.splitter = Splitter()
        self.events = 0
        self.bytes = 0
        self.logged_in: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(format_action("Login", Username="admin", Secret="bench",
                                           ActionID="1"))

    def dataReceived(self, data: bytes) -> None:
        self.bytes += len(data)
        for block in self.splitter.feed(data):
            msg = parse_message(block)
            if msg.kind == "Event":
                self.events += 1
            elif msg.response == "Success" and not self.logged_in.called:
                self.logged_in.callback(None)


@defer.inlineCallbacks
def run(args: argparse.Namespace):
    clock = task.Clock() if args.plain_clock else FastClock()
    clock.advance(1_795_660_000)
    queues = [q for q in args.queues.split(",") if q]
    port, pbx = yield start_simulator(
        reactor, "tcp:0:interface=127.0.0.1", username="admin", secret="bench",
        agents=args.agents, calls_per_minute=args.calls_per_minute, queues=queues,
        seed=args.seed, clock=clock)
    client = Counter()
    ep = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
    yield ep.connect(protocol.Factory.forProtocol(lambda: client))
    yield client.logged_in
    # Warm up: let agents log in and queues fill before measuring.
    run_for(clock, 60)
    yield task.deferLater(reactor, 0.2, lambda: None)

    start_events, start_bytes = client.events, client.bytes
    sent_before = pbx.factory.events_sent
    started = time.perf_counter()
    cpu_started = time.process_time()
    simulated = 0.0
    while time.perf_counter() - started < args.seconds:
        run_for(clock, args.step)  # simulated time
        simulated += args.step
        # Let the reactor write and the client read before generating more.
        yield task.deferLater(reactor, 0, lambda: None)
    expected = pbx.factory.events_sent - sent_before
    while client.events - start_events < expected:  # drain what is in flight
        yield task.deferLater(reactor, 0.01, lambda: None)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    events = client.events - start_events
    mbytes = (client.bytes - start_bytes) / 1e6
    truth = pbx.truth()
    calls = sum(t["offered"] for t in truth.values())
    print(f"simulated {simulated:.0f} s ({simulated / 3600:.2f} h, {calls} calls offered in all) "
          f"in {elapsed:.2f} s wall")
    print(f"events received by the loopback client: {events} "
          f"({mbytes:.1f} MB, {events / elapsed:,.0f} events/s, {mbytes / elapsed:.1f} MB/s)")
    print(f"process CPU {cpu:.2f} s: {events / cpu:,.0f} events per CPU second "
          f"({'task.Clock' if args.plain_clock else 'FastClock'})")
    yield pbx.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="wall seconds to measure")
    p.add_argument("--agents", type=int, default=120)
    p.add_argument("--calls-per-minute", type=float, default=60.0, help="per queue")
    p.add_argument("--queues", default="q-callcenter,q-support")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--step", type=float, default=0.25, help="simulated seconds per reactor turn")
    p.add_argument("--plain-clock", action="store_true",
                   help="Twisted's task.Clock (re-sorts its calls on every callLater)")
    args = p.parse_args()
    task.react(lambda _r: run(args))


if __name__ == "__main__":
    main()
