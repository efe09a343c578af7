"""AMI client throughput, run by hand (not by the tests).

    .venv/bin/python benchmarks/ami_throughput.py [--trace answered.ami] [--repeat 400] [--runs 3]

A recorded trace's events, repeated ``--repeat`` times, are written by a
child process (plain blocking sockets, so it costs this process nothing) over
loopback TCP to a real ``AMIClient``: banner, Login, FullyBooted, the events,
then an ``Event: BenchmarkEnd`` sentinel.  The clock runs from the end of the
login to the sentinel's dispatch.  Each TCP scenario attaches its consumers to
the client (``TCP_SCENARIOS``): (a) is parsing + dispatch alone, to the
service's listeners (``callcenter.ami.names.EVENTS``) and to a ``"*"``
listener (every event parsed).  Part (b), parsing + state + KPIs + report,
is one more entry there once ``callcenter/center.py`` has ``Callcenter.attach``.

Then the same bytes, in the same 64 KiB chunks, go in-process (no I/O) to our
``AMIProtocol.dataReceived`` and to panoramisk's parser
(``panoramisk.ami_protocol.AMIProtocol.data_received``: its ``\\r\\n\\r\\n``
split, ``Message.from_line`` and ``Manager.dispatch``), with the same listener
work, and the ratio is printed.  Each figure is the best of ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import react
from twisted.internet.testing import StringTransport

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callcenter.ami.client import AMIClient  # noqa: E402
from callcenter.ami.message import Message  # noqa: E402
from callcenter.ami.names import EVENTS  # noqa: E402
from callcenter.ami.protocol import AMIProtocol  # noqa: E402

TRACES = ROOT.parent / "shared" / "ami-traces"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
FULLY_BOOTED = b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
SENTINEL = b"Event: BenchmarkEnd\r\n\r\n"
CHUNK = 65536


def trace_events(name: str) -> tuple[bytes, int]:
    """The trace's event messages (no banner, no responses) and how many."""
    import json

    data = (TRACES / name).read_bytes()
    rows = [json.loads(line) for line in open(TRACES / f"{name}.idx.jsonl")]
    events = [data[r["off"] : r["off"] + r["len"]] for r in rows if r["kind"] == "Event"]
    return b"".join(events), len(events)


# -- the listeners' work: look one field up, as any real consumer does ---------

def touch(msg: Message) -> None:
    msg.get("Queue")


def attach_service_listeners(client: AMIClient) -> None:
    for name in EVENTS:
        client.add_listener(name, touch)


def attach_every_event(client: AMIClient) -> None:
    client.add_listener("*", touch)


# Each scenario attaches its consumers to a fresh client before it connects.
Scenario = tuple[str, Callable[[AMIClient], object]]
TCP_SCENARIOS: list[Scenario] = [
    ("(a) parse + dispatch, service listeners, loopback TCP", attach_service_listeners),
    ("(a) parse + dispatch, every event parsed, loopback TCP", attach_every_event),
    # (b) parse + state + KPIs + report: append e.g.
    #   ("(b) parse + state + KPIs + report, loopback TCP",
    #    lambda client: Callcenter(...).attach(client))
]


# -- the sending side (a child process) ------------------------------------------

def serve(fd: int, trace: str, repeat: int) -> None:
    events, _ = trace_events(trace)
    stream = events * repeat + SENTINEL
    with socket.socket(fileno=fd) as listener:
        conn, _ = listener.accept()
    with conn:
        conn.sendall(BANNER)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        match = re.search(rb"ActionID: ([^\r\n]*)", request)
        aid = match.group(1) if match else b""
        conn.sendall(b"Response: Success\r\nActionID: " + aid
                     + b"\r\nMessage: Authentication accepted\r\n\r\n" + FULLY_BOOTED)
        conn.sendall(stream)
        while conn.recv(65536):  # until the client hangs up
            pass


async def measure_tcp(reactor, trace: str, repeat: int, attach: Callable[[AMIClient], object]) -> tuple[float, float]:
    """(events/s, CPU share of this process) for one run over loopback TCP."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-fd", str(listener.fileno()),
         "--trace", trace, "--repeat", str(repeat)],
        pass_fds=[listener.fileno()])
    listener.close()
    _, per_trace = trace_events(trace)
    client = AMIClient(
        reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port), "bench", "bench",
        ping_interval=0, retry_initial=0.1)
    attach(client)
    done: Deferred[float] = Deferred()
    client.add_listener("BenchmarkEnd", lambda msg: done.callback(time.perf_counter()))
    client.startService()
    try:
        await client.whenConnected()
        start, cpu0 = time.perf_counter(), time.process_time()
        end = await done
        cpu = time.process_time() - cpu0
    finally:
        await client.stopService()
        child.wait(timeout=30)
    elapsed = end - start
    return per_trace * repeat / elapsed, cpu / elapsed


# -- in-process, ours and panoramisk's ---------------------------------------------

def chunks_of(trace: str, repeat: int) -> tuple[list[bytes], int]:
    events, per_trace = trace_events(trace)
    stream = BANNER + events * repeat
    return [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)], per_trace * repeat


def ours_in_process(chunks: list[bytes], n_events: int, every: bool) -> float:
    listeners = {name: touch for name in EVENTS}

    def dispatch(msg: Message) -> None:  # what AMIClient._dispatch does, minus its guards
        if every:
            touch(msg)
        else:
            listeners[msg.name](msg)

    proto = AMIProtocol(dispatch, wanted=None if every else frozenset(EVENTS))
    proto.makeConnection(StringTransport())
    start = time.perf_counter()
    for chunk in chunks:
        proto.dataReceived(chunk)
    return n_events / (time.perf_counter() - start)


def panoramisk_in_process(chunks: list[bytes], n_events: int, every: bool) -> float:
    from panoramisk import Manager
    from panoramisk.ami_protocol import AMIProtocol as PanoramiskProtocol

    loop = asyncio.new_event_loop()
    try:
        manager = Manager(loop=loop)
        manager.callbacks.clear()  # its own FullyBooted handler would schedule tasks
        manager.patterns.clear()
        names = frozenset(EVENTS)
        # One "*" pattern filtered by a set: the cheapest way to listen to
        # several names with panoramisk (a pattern per name costs a regex each).
        if every:
            manager.register_event("*", lambda mgr, event: event.get("Queue"))
        else:
            manager.register_event("*", lambda mgr, event: event.get("Queue") if event.event in names else None)
        proto = PanoramiskProtocol()
        proto.connection_made(StringTransport())
        proto.factory = manager
        start = time.perf_counter()
        for chunk in chunks:
            proto.data_received(chunk)
        return n_events / (time.perf_counter() - start)
    finally:
        loop.close()


# -- main ------------------------------------------------------------------------

async def main(reactor, args: argparse.Namespace) -> None:
    _, per_trace = trace_events(args.trace)
    n = per_trace * args.repeat
    print(f"AMI client throughput: {args.trace} events x{args.repeat} = {n:,} events; "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs; best of {args.runs} runs")
    events, _ = trace_events(args.trace)
    names = re.findall(rb"^Event: ([^\r\n]*)", events, re.M)
    service_share = sum(1 for name in names if name.decode() in EVENTS) / len(names)
    print(f"service listeners: {len(EVENTS)} event names, {service_share:.0%} of this trace's events")
    results: dict[str, float] = {}
    for label, attach in TCP_SCENARIOS:
        runs = [await measure_tcp(reactor, args.trace, args.repeat, attach) for _ in range(args.runs)]
        best, cpu = max(runs)
        results[label] = best
        print(f"{label}: {best:,.0f} events/s (client CPU {cpu:.0%})")

    chunks, n = chunks_of(args.trace, args.repeat)
    for every, what in ((False, "service listeners"), (True, "every event parsed")):
        ours = max(ours_in_process(chunks, n, every) for _ in range(args.runs))
        theirs = max(panoramisk_in_process(chunks, n, every) for _ in range(args.runs))
        print(f"in-process, {what}: ours {ours:,.0f} events/s, panoramisk {theirs:,.0f} events/s, "
              f"ratio {ours / theirs:.1f}x")
        results[f"ratio {what}"] = ours / theirs

    tcp = results[TCP_SCENARIOS[0][0]]
    ok = tcp >= 100_000 and results["ratio service listeners"] >= 2
    print(f"target (a) >= 100,000 events/s over TCP and >= 2x panoramisk: {'met' if ok else 'NOT met'}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", default="answered.ami")
    parser.add_argument("--repeat", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    options = parse_args()
    if options.serve_fd is not None:
        serve(options.serve_fd, options.trace, options.repeat)
    else:
        react(lambda reactor: ensureDeferred(main(reactor, options)))
