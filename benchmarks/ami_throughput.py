"""AMI client throughput, run by hand (``make bench``; never by the tests).

    .venv/bin/python benchmarks/ami_throughput.py [--trace answered.ami] [--repeat 200] [--runs 5]
        [--read agent,call,user] [--stages]

The stream: a recorded trace's events (``shared/ami-traces``, recorded with
``read=all``) less those a session with the shipped ``manager.conf`` read
classes would not get (``asterisk-config/manager.conf``, ``read=`` of the
``[callcenter]`` user: an event is sent when its ``Privilege:`` classes share
one with the session's), repeated ``--repeat`` times.  ``--read all`` keeps
every event.

(a) **stream events/s**: a child process (plain blocking sockets, so it costs
    this process nothing) writes the stream over loopback TCP to a real
    ``AMIClient`` with the service's listeners (``callcenter.ami.names.EVENTS``,
    each reading one field); the clock runs from the end of the login to the
    dispatch of a sentinel event after the stream.
(b) **state events/s**: the same with a real ``Callcenter`` and report writer
    (a temporary file, written once per reactor turn by ``TurnWriter``, its
    fsync in a thread) attached as ``service.py`` wires them without Redis; every
    repetition gets its own Uniqueids (``-r<N>`` suffix), so each one is new
    calls, not late duplicates.  The figure counts only the events that
    reach ``Callcenter.handle_event`` (what the state owner works on), per
    second of the same clock; the stream rate of that run is printed too.
(b') **CPU per state event**: the (b) pipeline in process, without the
    socket (``AMIProtocol`` fed the same unique-id stream in 64 KiB chunks,
    each chunk one turn of a clock that follows the wall clock), by
    ``time.process_time``, so other work on the machine counts less.  The
    report is written through ``TurnWriter`` as in (b), one write per turn
    (also ``service.py``'s writer without Redis; the store writes its outbox
    lines the same way); here the fsync runs inline (no threads on a test
    clock), in (b) off the reactor.  ``--stages`` also cuts the pipeline
    after each part (``STAGES``: read, translate, apply, report lines, their
    fsync) and prints what each part adds per state event.
(c) **like-for-like parse ratio** (the headline): the same bytes, in the same
    64 KiB chunks, in-process (no I/O), to our ``AMIProtocol.dataReceived``
    with a ``*`` listener that reads every header (``as_dict()``: our lazy
    messages are then parsed in full) and to panoramisk's parser
    (``panoramisk.ami_protocol.AMIProtocol.data_received``: its
    ``\\r\\n\\r\\n`` split, ``Message.from_line``, which decodes every
    header, and ``Manager.dispatch`` to one ``*`` callback); alternated run
    by run so both see the same machine, each timed by this process's CPU
    time (``time.process_time``: what other work on the machine takes from
    this process does not count against either).  The second ratio lets our protocol
    skip the events the service does not listen to (unread) while
    panoramisk's ``*`` callback filters by name.

Every figure is the median and range over ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater, react
from twisted.internet.testing import StringTransport

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    command_line,
    delivered,
    load_average,
    med_range,
    shipped_read_classes,
    traces_dir,
)
from callcenter.ami.client import AMIClient  # noqa: E402
from callcenter.ami.message import Message  # noqa: E402
from callcenter.ami.names import EVENTS  # noqa: E402
from callcenter.ami.protocol import AMIProtocol  # noqa: E402

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
FULLY_BOOTED = b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
SENTINEL = b"Event: BenchmarkEnd\r\n\r\n"
CHUNK = 65536
TARGET_STATE_EVENTS = 50_000  # (b), state events/s on this 2-core machine
TARGET_PARSE_RATIO = 3.0  # (c), ours / panoramisk, every header of every event


def read_classes(spec: str | None) -> frozenset[str] | None:
    """None keeps every event (``all``); default: the shipped manager.conf's."""
    if spec is None:
        return shipped_read_classes()
    return None if spec == "all" else frozenset(spec.split(","))


def trace_event_blocks(name: str, read: frozenset[str] | None) -> list[bytes]:
    """The trace's events, as recorded (``\\r\\n``, blank line included), that
    a session with ``read`` classes gets."""
    data = (traces_dir() / name).read_bytes()
    blocks = [b + b"\r\n\r\n" for b in data.split(b"\r\n\r\n") if b.startswith(b"Event: ")]
    return [b for b in blocks if read is None or delivered(b, read)]


def stream_of(name: str, read: frozenset[str] | None) -> tuple[bytes, int]:
    blocks = trace_event_blocks(name, read)
    return b"".join(blocks), len(blocks)


# -- the listeners' work -------------------------------------------------------
# A listener reads the one field it needs, as the service's do; or reads them
# all, which makes our lazy messages do the full parse (panoramisk always does).

def touch(msg: Message) -> None:
    msg.get("Queue")


def read_all(msg: Message) -> None:
    msg.as_dict()  # the full parse


class Probe:
    """What a TCP run saw: events that reached the state owner, if one was attached."""

    def __init__(self) -> None:
        self.state_events = 0
        self.reconciled = True  # until a state owner is attached: nothing to wait for


def attach_service_listeners(client: AMIClient, probe: Probe) -> None:
    for name in EVENTS:
        client.add_listener(name, touch)


def attach_callcenter(client: AMIClient, probe: Probe) -> None:
    """(b): the service's state owner and report writer, as service.py wires them;
    every event handed to ``handle_event`` is counted."""
    import atexit
    import shutil
    import tempfile

    from twisted.internet import reactor

    from callcenter.center import Callcenter
    from callcenter.report import ReportWriter, TurnWriter

    scratch = tempfile.mkdtemp(prefix="bench-")
    atexit.register(shutil.rmtree, scratch, True)
    report = ReportWriter(os.path.join(scratch, "report.csv"))
    report.open()
    center = Callcenter(reactor)
    handle = center.handle_event

    def counted(msg: Message) -> object:
        probe.state_events += 1
        return handle(msg)

    center.handle_event = counted  # type: ignore[method-assign]  # attach() reads it
    probe.reconciled = False
    reconcile = center.reconcile

    def reconciled(*args: object, **kw: object) -> object:
        try:
            return reconcile(*args, **kw)  # type: ignore[arg-type]
        finally:
            probe.reconciled = True

    center.reconcile = reconciled  # type: ignore[method-assign]
    # Lines written once per reactor turn (one write, one fsync), as the Redis
    # store's outbox writes them; without Redis the service uses this writer.
    lines = TurnWriter(reactor, report)
    center.subscribe(lambda ch: lines.add(ch.transitions))
    center.attach(client)


_IDS = re.compile(rb"(?m)^((?:Dest)?(?:Uniqueid|Linkedid): [^\r\n]*)")


# -- the sending side (a child process) ------------------------------------------

# Actions whose answer is a list: answered by an empty one, or QueueStatus by
# the trace's recorded final status, so that a consumer's reconcile can run.
LIST_ACTIONS = frozenset({"QueueStatus", "QueueSummary", "CoreShowChannels", "Status"})


def answer(action: bytes, trace: str) -> bytes:
    fields = dict(re.findall(rb"(?m)^([^:\r\n]+): ([^\r\n]*)", action))
    name, aid = fields.get(b"Action", b""), fields.get(b"ActionID", b"")
    if name == b"Ping":
        return b"Response: Success\r\nActionID: " + aid + b"\r\nPing: Pong\r\n\r\n"
    status = traces_dir() / trace.replace(".ami", ".final-status.ami")
    if name == b"QueueStatus" and status.exists():
        return re.sub(rb"(?m)^ActionID: [^\r\n]*", b"ActionID: " + aid, status.read_bytes())
    if name.decode() in LIST_ACTIONS:
        return (b"Response: Success\r\nActionID: " + aid + b"\r\nEventList: start\r\n\r\n"
                b"Event: " + name + b"Complete\r\nActionID: " + aid
                + b"\r\nEventList: Complete\r\nListItems: 0\r\n\r\n")
    return b"Response: Success\r\nActionID: " + aid + b"\r\nMessage: benchmark\r\n\r\n"


def serve(fd: int, trace: str, read: frozenset[str] | None, repeat: int,
          unique_ids: bool = False) -> None:
    """Banner, Login, then the events in message-aligned pieces; actions sent
    meanwhile are answered between two pieces (a reader thread)."""
    import threading

    pieces: list[bytes] = []
    piece = b""
    for block in trace_event_blocks(trace, read):
        piece += block
        if len(piece) >= CHUNK:
            pieces.append(piece)
            piece = b""
    pieces.append(piece)
    # Every repetition's bytes are made before the client connects: the
    # sender must not be what limits the rate (Asterisk does not rewrite
    # its ids on the way out).
    if unique_ids:
        stream = [_IDS.sub(rb"\1" + b"-r%d" % r, p) for r in range(repeat) for p in pieces]
    else:
        stream = pieces * repeat
    with socket.socket(fileno=fd) as listener:
        conn, _ = listener.accept()
    lock = threading.Lock()

    def answer_actions(buf: bytes) -> None:
        while True:
            while b"\r\n\r\n" in buf:
                action, buf = buf.split(b"\r\n\r\n", 1)
                with lock:
                    conn.sendall(answer(action, trace))
            more = conn.recv(65536)
            if not more:  # the client hung up
                return
            buf += more

    with conn:
        conn.sendall(BANNER)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        login, rest = request.split(b"\r\n\r\n", 1)
        aid = re.search(rb"ActionID: ([^\r\n]*)", login)
        conn.sendall(b"Response: Success\r\nActionID: " + (aid.group(1) if aid else b"")
                     + b"\r\nMessage: Authentication accepted\r\n\r\n" + FULLY_BOOTED)
        reader = threading.Thread(target=answer_actions, args=(rest,), daemon=True)
        reader.start()
        for piece in stream:
            with lock:
                conn.sendall(piece)
        with lock:
            conn.sendall(SENTINEL)
        reader.join()


async def measure_tcp(
    reactor, args: argparse.Namespace, attach: Callable[[AMIClient, Probe], object],
    unique_ids: bool,
) -> tuple[float, float, float]:
    """(stream events/s, state events/s, CPU share of this process), one run over loopback TCP."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-fd", str(listener.fileno()),
         "--trace", args.trace, "--read", args.read or ",".join(sorted(shipped_read_classes())),
         "--repeat", str(args.repeat)] + (["--unique-ids"] if unique_ids else []),
        pass_fds=[listener.fileno()])
    listener.close()
    _, per_trace = stream_of(args.trace, read_classes(args.read))
    client = AMIClient(
        reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port), "bench", "bench",
        ping_interval=0, retry_initial=0.1)
    probe = Probe()
    attach(client, probe)
    done: Deferred[float] = Deferred()
    client.add_listener("BenchmarkEnd", lambda msg: done.callback(time.perf_counter()))
    # The clock starts at FullyBooted, which the PBX sends right after the
    # login's answer and before the stream (the login's own Deferred may fire
    # after the first events are read: a clock started there ran short).
    marks: list[tuple[float, float, int]] = []
    client.add_listener("FullyBooted", lambda msg: marks.append(
        (time.perf_counter(), time.process_time(), probe.state_events)))
    client.startService()
    try:
        end = await done
        cpu1 = time.process_time()
        start, cpu0, state0 = marks[0]
        cpu = cpu1 - cpu0
        state = probe.state_events - state0
        # A short stream may end before the resync after login is answered: let
        # it finish, so that closing the connection fails nothing (not timed).
        for _ in range(500):
            if probe.reconciled:
                break
            await deferLater(reactor, 0.01, lambda: None)
    finally:
        await client.stopService()
        child.wait(timeout=30)
    elapsed = end - start
    return per_trace * args.repeat / elapsed, state / elapsed, cpu / elapsed


# -- (b') in process: CPU per state event -----------------------------------------

def unique_stream(name: str, read: frozenset[str] | None, repeat: int) -> bytes:
    """The stream ``repeat`` times, each repetition with its own Uniqueids (as the child sends it)."""
    one, _ = stream_of(name, read)
    return b"".join(_IDS.sub(rb"\1" + b"-r%d" % r, one) for r in range(repeat))


#: Where ``state_cpu_in_process`` may stop, in pipeline order: the read alone
#: (framing, skipping the unwanted stream, each wanted event made a lazy
#: message and checked), + translate (``handle_event`` with ``apply`` a
#: no-op), + apply (state, KPIs, ``Changes``), + the report lines without
#: their fsync, + the fsync (the whole (b') pipeline).
STAGES = ("read", "translate", "apply", "report, no fsync", "report")


def state_cpu_in_process(chunks: list[bytes], upto: str = "report") -> tuple[float, int]:
    """(b') CPU seconds per state event: the (b) pipeline without the socket
    (``AMIProtocol`` -> ``Callcenter.handle_event`` -> the report file through
    ``TurnWriter``, its fsync inline), each chunk one reactor turn of a
    ``task.Clock`` that follows the wall clock; by ``time.process_time``.
    ``upto`` (one of ``STAGES``) cuts it short, for the cost of each part."""
    import tempfile

    from twisted.internet.task import Clock

    from callcenter.ami import events as ev
    from callcenter.center import Callcenter
    from callcenter.report import ReportWriter, TurnWriter

    stage = STAGES.index(upto)
    clock = Clock()
    clock.advance(time.time())
    center = Callcenter(clock)
    if stage == 1:
        center.apply = lambda event: None  # type: ignore[method-assign]
    count = [0]
    handle = center.handle_event

    def dispatch(msg: Message) -> None:
        count[0] += 1
        if stage:
            handle(msg)

    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        report = ReportWriter(os.path.join(scratch, "report.csv"), None, stage == 4)
        report.open()
        lines = TurnWriter(clock, report)
        if stage >= 3:
            center.subscribe(lambda ch: lines.add(ch.transitions))
        proto = AMIProtocol(dispatch, wanted=frozenset(ev.TRANSLATORS))
        proto.makeConnection(StringTransport())
        start = time.process_time()
        for chunk in chunks:
            proto.dataReceived(chunk)
            clock.advance(max(0.0, time.time() - clock.seconds()))  # the turn ends: timers, report
        cpu = time.process_time() - start
        report.close()
    return cpu / max(1, count[0]), count[0]


# -- in-process, ours and panoramisk's ---------------------------------------------

def chunks_of(stream: bytes, per_trace: int, repeat: int) -> tuple[list[bytes], int]:
    data = BANNER + stream * repeat
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)], per_trace * repeat


def ours_in_process(chunks: list[bytes], n_events: int, service_only: bool,
                    work: Callable[[Message], object]) -> float:
    listeners = dict.fromkeys(EVENTS, work)

    def dispatch(msg: Message) -> None:  # what AMIClient._dispatch does, minus its guards
        listeners[msg.name](msg) if service_only else work(msg)

    proto = AMIProtocol(dispatch, wanted=frozenset(EVENTS) if service_only else None)
    proto.makeConnection(StringTransport())
    start = time.process_time()
    for chunk in chunks:
        proto.dataReceived(chunk)
    return n_events / (time.process_time() - start)


def panoramisk_in_process(chunks: list[bytes], n_events: int, service_only: bool) -> float:
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
        # Its messages are parsed in full already: reading one field is all.
        if service_only:
            manager.register_event(
                "*", lambda mgr, event: event.get("Queue") if event.event in names else None)
        else:
            manager.register_event("*", lambda mgr, event: event.get("Queue"))
        proto = PanoramiskProtocol()
        proto.connection_made(StringTransport())
        proto.factory = manager
        start = time.process_time()
        for chunk in chunks:
            proto.data_received(chunk)
        return n_events / (time.process_time() - start)
    finally:
        loop.close()


# -- main ------------------------------------------------------------------------

def _rate(values: list[float]) -> str:
    return med_range(values, "{:,.0f}")


async def main(reactor, args: argparse.Namespace) -> None:
    read = read_classes(args.read)
    stream, per_trace = stream_of(args.trace, read)
    everything, per_trace_all = stream_of(args.trace, None)
    n = per_trace * args.repeat
    names = re.findall(rb"^Event: ([^\r\n]*)", stream, re.M)
    service_share = sum(1 for name in names if name.decode() in EVENTS) / max(1, len(names))
    print(f"$ {command_line()}")
    print(f"AMI throughput: {args.trace}, read classes "
          f"{','.join(sorted(read)) if read else 'all'}: {per_trace} of its {per_trace_all} events"
          f" x{args.repeat} = {n:,} events; {service_share:.0%} of them are of the "
          f"{len(EVENTS)} names the service handles")
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{load_average()}; median (range) of {args.runs} runs\n")

    stream_rates, state_rates, cpus = [], [], []
    for _ in range(args.runs):
        rate, _, cpu = await measure_tcp(reactor, args, attach_service_listeners, False)
        stream_rates.append(rate)
        cpus.append(cpu)
    print(f"(a) stream events/s, loopback TCP, AMIClient + the service's listeners: "
          f"{_rate(stream_rates)} (client CPU {statistics.median(cpus):.0%})")
    full_stream, state_cpus = [], []
    for _ in range(args.runs):
        rate, state, cpu = await measure_tcp(reactor, args, attach_callcenter, True)
        full_stream.append(rate)
        state_rates.append(state)
        state_cpus.append(cpu)
    print(f"(b) state events/s (reaching Callcenter.handle_event), loopback TCP, with state, "
          f"KPIs and report: {_rate(state_rates)}  [stream events/s of the same runs: "
          f"{_rate(full_stream)}; client CPU {statistics.median(state_cpus):.0%}]  "
          f"target >= {TARGET_STATE_EVENTS:,}: "
          f"{'met' if statistics.median(state_rates) >= TARGET_STATE_EVENTS else 'NOT met'}")

    unique = BANNER + unique_stream(args.trace, read, args.repeat)
    cpu_per = []
    for _ in range(args.runs):
        per, handled = state_cpu_in_process(
            [unique[i : i + CHUNK] for i in range(0, len(unique), CHUNK)])
        cpu_per.append(per * 1e6)
    print(f"(b') CPU per state event, the same pipeline in process (no socket; report fsync "
          f"inline, once per chunk): {med_range(cpu_per, '{:.1f}')} us over {handled:,} state "
          f"events, i.e. {1e6 / statistics.median(cpu_per):,.0f} state events per CPU second")
    if args.stages:
        # Each cut of the pipeline run alternately, the least of the runs: the
        # part a stage adds is its cut minus the one before.
        best: dict[str, float] = {}
        for _ in range(args.runs):
            for upto in STAGES:
                per, _ = state_cpu_in_process(
                    [unique[i : i + CHUNK] for i in range(0, len(unique), CHUNK)], upto)
                best[upto] = min(best.get(upto, per), per)
        before = 0.0
        for upto in STAGES:
            print(f"     up to {upto:17s} {best[upto] * 1e6:5.1f} us  "
                  f"(+{(best[upto] - before) * 1e6:4.1f})")
            before = best[upto]

    chunks, n = chunks_of(stream, per_trace, args.repeat)
    ratios: dict[bool, list[float]] = {False: [], True: []}
    rates: dict[tuple[bool, str], list[float]] = {}
    for _ in range(args.runs):  # alternated, so both see the same machine
        for service_only, work in ((False, read_all), (True, touch)):
            ours = ours_in_process(chunks, n, service_only, work)
            theirs = panoramisk_in_process(chunks, n, service_only)
            rates.setdefault((service_only, "ours"), []).append(ours)
            rates.setdefault((service_only, "panoramisk"), []).append(theirs)
            ratios[service_only].append(ours / theirs)
    ratio = statistics.median(ratios[False])
    print(f"(c) parse every header of every event, in-process: ours {_rate(rates[False, 'ours'])}"
          f" events/s, panoramisk {_rate(rates[False, 'panoramisk'])} events/s: "
          f"ratio {med_range(ratios[False], '{:.2f}')}x  target >= {TARGET_PARSE_RATIO:g}x: "
          f"{'met' if ratio >= TARGET_PARSE_RATIO else 'NOT met'}")
    print(f"    skip unwanted (ours parses only the service's events, lazily): ours "
          f"{_rate(rates[True, 'ours'])} events/s, panoramisk {_rate(rates[True, 'panoramisk'])}"
          f" events/s: ratio {med_range(ratios[True], '{:.2f}')}x")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", default="answered.ami")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--read", help="read classes, comma-separated, or 'all' "
                        "(default: the shipped manager.conf's)")
    parser.add_argument("--stages", action="store_true",
                        help="(b') also cut at each stage of the pipeline: CPU per part")
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--unique-ids", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    options = parse_args()
    if options.serve_fd is not None:
        serve(options.serve_fd, options.trace, read_classes(options.read), options.repeat,
              options.unique_ids)
    else:
        react(lambda reactor: ensureDeferred(main(reactor, options)))
