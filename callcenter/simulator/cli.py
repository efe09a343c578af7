"""``callcenter-pbx-sim``: run the simulated PBX as a stand-alone AMI server.

    callcenter-pbx-sim --listen tcp:5038:interface=127.0.0.1 --username admin \\
        --secret S --agents 8 --calls-per-minute 4 --queues q-callcenter,q-support --seed 1

The secret may also come from ``--secret-file`` or the environment variable
``CALLCENTER_PBX_SIM_SECRET``.  ``--read`` (or ``CALLCENTER_PBX_SIM_READ``)
sets the user's manager.conf read classes; the default is the shipped
user's, so a CTI gets exactly what a real PBX would send the service.
A bad option gives one line and exit status 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from twisted.internet import defer, task
from twisted.internet.interfaces import IListeningPort, IReactorCore
from twisted.python import usage

from callcenter.simulator.pbx import SimulatedPBX, start_simulator
from callcenter.simulator.server import SHIPPED_READ, event_mask
from callcenter.simulator.traffic import Behaviour

SECRET_ENV = "CALLCENTER_PBX_SIM_SECRET"
READ_ENV = "CALLCENTER_PBX_SIM_READ"


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("A simulated Asterisk PBX with queues, agents and callers, speaking real AMI "
                "(Asterisk 22 event names and fields).")

    optFlags = [
        ["no-timestamps", None, "Leave out the Timestamp header (manager.conf timestampevents=no)."],
        ["legacy-pause-event", None, "Name the pause event QueueMemberPaused (Asterisk 11/12)."],
        ["quiet", "q", "Do not print a summary every minute."],
    ]
    optParameters = [
        ["listen", None, "tcp:5038:interface=127.0.0.1", "AMI server endpoint (Twisted endpoint string)."],
        ["username", None, "admin", "AMI user name."],
        ["secret", None, None, f"AMI secret (or --secret-file, or ${SECRET_ENV})."],
        ["secret-file", None, None, "File holding the AMI secret."],
        ["agents", None, "8", "Number of simulated agents (ids 1001, 1002, ...)."],
        ["calls-per-minute", None, "4", "Caller arrivals per minute, per queue (Poisson)."],
        ["queues", None, "q-callcenter", "Queue names, comma-separated."],
        ["seed", None, "1", "Random seed (same seed, same calls)."],
        ["read", None, None, f"The AMI user's read classes, as manager.conf read= (default: the shipped "
                             f"user's, {SHIPPED_READ}; 'all' for every event; or ${READ_ENV})."],
        ["login-spacing", None, str(Behaviour.login_spacing),
         "Seconds between two agents' logins at start (a big center logs in faster with less)."],
    ]

    def postOptions(self) -> None:
        try:
            self["agents"] = int(self["agents"])
            self["calls-per-minute"] = float(self["calls-per-minute"])
            self["seed"] = int(self["seed"])
            self["login-spacing"] = float(self["login-spacing"])
        except ValueError as e:
            raise usage.UsageError(f"bad number: {e}") from None
        if self["agents"] < 0 or self["calls-per-minute"] < 0 or not self["login-spacing"] >= 0:
            raise usage.UsageError(
                "--agents, --calls-per-minute and --login-spacing must not be negative")
        queues = [q.strip() for q in self["queues"].split(",") if q.strip()]
        if not queues:
            raise usage.UsageError("--queues needs at least one queue name")
        self["queues"] = queues
        read = self["read"] if self["read"] is not None else os.environ.get(READ_ENV, SHIPPED_READ)
        if event_mask(read) < 0:
            raise usage.UsageError("--read needs read classes, e.g. agent,call,user or all")
        self["read"] = read
        secret = self["secret"]
        if secret is None and self["secret-file"]:
            try:
                with open(self["secret-file"]) as f:
                    secret = f.read().strip()
            except OSError as e:
                raise usage.UsageError(f"--secret-file: {e.strerror}: {self['secret-file']}") from None
        if secret is None:
            secret = os.environ.get(SECRET_ENV)
        if not secret:
            raise usage.UsageError(f"give the AMI secret: --secret, --secret-file or ${SECRET_ENV}")
        self["secret"] = secret


def start(reactor: IReactorCore, opts: Options) -> defer.Deferred[tuple[IListeningPort, SimulatedPBX]]:
    return start_simulator(
        reactor, opts["listen"], username=opts["username"], secret=opts["secret"],
        agents=opts["agents"], calls_per_minute=opts["calls-per-minute"], queues=opts["queues"],
        seed=opts["seed"], read=opts["read"], timestampevents=not opts["no-timestamps"],
        legacy_pause_name=bool(opts["legacy-pause-event"]),
        behaviour=Behaviour(login_spacing=opts["login-spacing"]))


def summary(pbx: SimulatedPBX) -> str:
    parts = []
    for name, t in pbx.truth().items():
        parts.append(f"{name}: offered {t['offered']} answered {t['answered']} "
                     f"abandoned {t['abandoned']} waiting {t['waiting']} talking {t['connected']}")
    return "; ".join(parts)


@defer.inlineCallbacks
def _run(reactor: IReactorCore, opts: Options):
    try:
        port, pbx = yield start(reactor, opts)
    except Exception as e:  # a busy port, a bad endpoint string...
        print(f"callcenter-pbx-sim: cannot listen on {opts['listen']}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    host = port.getHost()
    print(f"callcenter-pbx-sim: AMI on {getattr(host, 'host', '?')}:{getattr(host, 'port', '?')}, "
          f"queues {', '.join(opts['queues'])}, {opts['agents']} agents, "
          f"{opts['calls-per-minute']:g} calls/min per queue, seed {opts['seed']}", flush=True)
    if not opts["quiet"]:
        loop = task.LoopingCall(lambda: print(summary(pbx), flush=True))
        loop.clock = reactor
        loop.start(60, now=False)
    done: defer.Deferred[None] = defer.Deferred()
    reactor.addSystemEventTrigger("before", "shutdown", pbx.stop)
    yield done  # runs until the reactor is stopped (Ctrl-C / SIGTERM)


def main(argv: Sequence[str] | None = None) -> None:
    opts = Options()
    try:
        opts.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as e:
        print(f"callcenter-pbx-sim: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    task.react(_run, (opts,))


if __name__ == "__main__":
    main()
