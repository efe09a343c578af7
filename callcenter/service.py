"""``twistd callcenter``: wires the Callcenter to its adapters.

Start order matters: the report file must be writable, Redis state is loaded
before the first AMI event, then the AMI client connects (and resyncs with
the PBX on every login), and the dashboard listens.  Any failure at start is
one clear log line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
from typing import Any

from twisted.application import service, strports
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, clientFromString
from twisted.logger import Logger
from twisted.python import usage

from callcenter.center import Callcenter
from callcenter.kpi import BusinessDay
from callcenter.options import Options as _BaseOptions
from callcenter.report import ReportWriter, ReportWriterError

log = Logger()

__all__ = ["Options", "makeService", "CallcenterService", "default_static_dir"]


class Options(_BaseOptions):
    """``twistd callcenter``'s options: a bad value is one line on stderr and
    exit status 2, not twistd's whole usage text followed by the error."""

    def postOptions(self) -> None:
        try:
            super().postOptions()
        except usage.UsageError as e:
            sys.stderr.write(f"twistd callcenter: {e}\n")
            raise SystemExit(2) from None


def default_static_dir() -> str:
    """The dashboard page: the checkout's static/, else the installed copy."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.path.join(os.path.dirname(here), "static"),
        os.path.join(sys.prefix, "share", "callcenter", "static"),
    ]
    for path in candidates:
        if os.path.isfile(os.path.join(path, "index.html")):
            return path
    return candidates[0]


class CallcenterService(service.MultiService):
    def __init__(self, options: _BaseOptions, reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        self.options = options
        tz = options["timezone"]
        self.report = ReportWriter(options["report"], tz, fsync=options.get("report-fsync", True))
        try:
            self.report.open()
        except ReportWriterError as e:
            raise usage.UsageError(str(e)) from None
        self.center = Callcenter(
            reactor,
            sla=options["sla"],
            business_day=BusinessDay(options["day-starts-at"], tz),
        )
        self.store: Any = None
        self.ami: Any = None
        self.simulator: Any = None
        self.web_port: Any = None
        self._old_hup: Any = None

    # twistd calls startService once the reactor is running.
    def startService(self) -> None:
        super().startService()
        self._old_hup = signal.signal(signal.SIGHUP, self._on_hup)
        d = defer.ensureDeferred(self._start())
        d.addErrback(self._start_failed)

    def _on_hup(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self.report.reopen)

    def _start_failed(self, failure: Any) -> None:
        err = failure.value
        message = str(err) if isinstance(err, StartupError) else f"{type(err).__name__}: {err}"
        if not isinstance(err, StartupError):
            log.failure("callcenter failed to start", failure)
        log.critical("callcenter cannot start: {message}", message=message)
        self.reactor.callLater(0, self._exit, 1)

    def _exit(self, code: int) -> None:
        # twistd exits 0 on reactor.stop(); set the code the way twistd reads it.
        try:
            from twisted.application import app

            app._exitCode = code  # type: ignore[attr-defined]
        except Exception:
            pass
        if self.reactor.running:
            self.reactor.stop()

    async def _start(self) -> None:
        opts = self.options
        reactor = self.reactor
        await self._start_store()
        self.center.start()
        if opts["simulate"]:
            endpoint, user, secret = await self._start_simulator()
        else:
            try:
                endpoint = clientFromString(reactor, opts["ami"])
            except Exception as e:
                raise StartupError(f"--ami {opts['ami']!r}: {e}") from None
            user, secret = opts["ami-user"], opts["ami-secret"]
        from callcenter.ami.client import AMIClient

        self.ami = AMIClient(reactor, endpoint, user, secret)
        self.center.attach(self.ami)
        self.ami.setServiceParent(self)
        await self._start_web()

    async def _start_store(self) -> None:
        try:
            from callcenter.store.redis_store import RedisStore
        except ImportError as e:  # pragma: no cover - a broken installation
            log.warn("Redis store unavailable ({err}); state is kept in memory only", err=e)
            self.center.subscribe(lambda ch: self.report.write(ch.transitions))
            return
        # The store writes the report: each event's lines go into its Redis
        # transaction first, so a SIGKILL between file and Redis loses or
        # repeats no line (see docs/redis.md, "report outbox").
        try:
            self.store = RedisStore(
                self.reactor,
                self.options["redis"],
                self.options["redis-prefix"],
                self.center,
                report=self.report,
                report_wait=self.options.get("report-wait", 2.0),
                max_record_age=self.options.get("max-record-age", 400.0) * 86400,
            )
        except ValueError as e:
            raise StartupError(str(e)) from None
        await self.store.load()
        self.store.start()

    async def _start_simulator(self) -> tuple[Any, str, str]:
        from callcenter.simulator import start_simulator

        opts = self.options
        secret = secrets.token_hex(16)
        port, pbx = await start_simulator(
            self.reactor,
            "tcp:0:interface=127.0.0.1",
            username="callcenter",
            secret=secret,
            agents=opts["sim-agents"],
            calls_per_minute=opts["sim-calls-per-minute"],
            queues=tuple(opts["sim-queues"]),
            seed=opts["seed"],
        )
        self.simulator = (port, pbx)
        address = port.getHost()
        log.info("simulated PBX listening on {host}:{port}", host=address.host, port=address.port)
        return TCP4ClientEndpoint(self.reactor, "127.0.0.1", address.port), "callcenter", secret

    async def _start_web(self) -> None:
        from callcenter.web import MissingAssets, make_site

        opts = self.options
        static = opts["static-dir"] or default_static_dir()
        try:
            site = make_site(
                self.center,
                static_dir=static,
                allowed_origins=opts["allowed-origins"],
                reactor=self.reactor,
                sla=opts["sla"],
                sla_target=opts["sla-target"],
                limits=_web_limits(opts),
            )
        except (MissingAssets, ValueError) as e:
            raise StartupError(str(e)) from None
        try:
            endpoint = strports.endpoints.serverFromString(self.reactor, opts["listen"])
            self.web_port = await endpoint.listen(site)
        except Exception as e:
            raise StartupError(f"--listen {opts['listen']!r}: {e}") from None
        address = self.web_port.getHost()
        host = getattr(address, "host", "127.0.0.1")
        scheme = "https" if opts["listen"].startswith("ssl:") else "http"
        log.info(
            "dashboard at {scheme}://{host}:{port}/",
            scheme=scheme,
            host=host if host not in ("0.0.0.0", "::") else "127.0.0.1",
            port=getattr(address, "port", ""),
        )

    def stopService(self) -> defer.Deferred:
        if self._old_hup is not None:
            signal.signal(signal.SIGHUP, self._old_hup)
        self.center.stop()
        ds = [defer.maybeDeferred(super().stopService)]
        if self.web_port is not None:
            ds.append(defer.maybeDeferred(self.web_port.stopListening))
        if self.simulator is not None:
            port, pbx = self.simulator
            ds.append(defer.maybeDeferred(port.stopListening))
            if hasattr(pbx, "stop"):
                pbx.stop()
        if self.store is not None:
            ds.append(defer.maybeDeferred(self.store.stop))
        d = defer.DeferredList(ds, consumeErrors=True)
        d.addCallback(lambda _: self.report.close())
        return d


def _web_limits(opts: Any) -> Any:
    from callcenter.web.limits import WebLimits

    defaults = WebLimits()
    return WebLimits(
        max_connections=opts.get("max-connections", defaults.max_connections),
        max_per_address=opts.get("max-per-address", defaults.max_per_address),
        fd_reserve=opts.get("fd-reserve", defaults.fd_reserve),
        hello_interval=opts.get("hello-interval", defaults.hello_interval),
        request_timeout=opts.get("request-timeout", defaults.request_timeout),
        max_body=opts.get("max-body", defaults.max_body),
        log_interval=opts.get("log-interval", defaults.log_interval),
    )


class StartupError(Exception):
    """A start-up problem worth one line, not a traceback."""


def makeService(options: _BaseOptions) -> service.IService:
    return CallcenterService(options)
