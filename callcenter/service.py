"""``twistd callcenter``: the service tree that wires the Callcenter to its adapters.

``CallcenterService`` is a ``MultiService`` whose children start one after the
other, each once the one before it is ready (``StartInOrder``):

1. ``ReportService`` — the report file (opened, so an unwritable path is a
   one-line usage error before anything starts), reopened on SIGHUP;
2. ``StoreService`` — Redis: loads the saved state in ``startService`` before
   any AMI event can arrive, then writes every change;
3. ``SimulatorService`` — only with ``--simulate``: the simulated PBX;
4. ``QueueLogService`` — only with ``--queue-log``: follows Asterisk's
   queue_log, fills AMI gaps from it (docs/reliability.md);
5. ``PbxService`` — the AMI client (reconnecting, resync after every login);
6. ``AccessService`` — users, roles and login sessions (docs/security.md);
7. the dashboard: ``strports``-style ``StreamServerEndpointService``;
8. ``NotifyService`` — systemd's READY=1 / STATUS= / WATCHDOG=1 (``systemd.py``).

``Health`` (``health.py``) follows the PBX link and Redis for the dashboards,
``/readyz`` and systemd.

Any failure at start is one clear log line and a non-zero exit, never a
traceback.  Stopping runs the other way round (web first, report last).
"""

from __future__ import annotations

import secrets
import signal
import sys
from typing import Any

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, clientFromString, serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python import usage
from zope.interface import implementer

from callcenter.center import Callcenter
from callcenter.core.pause_reasons import DEFAULT_REASONS, PauseReasons
from callcenter.core.pbx_counters import MAX_UNSEEN
from callcenter.health import Health, follow_pbx, follow_store
from callcenter.kpi import BusinessDay
from callcenter.options import Options as _BaseOptions
from callcenter.process_exit import exit_after_stop
from callcenter.report import ReportWriter, ReportWriterError, TurnWriter
from callcenter.systemd import READY_TIMEOUT, NotifyService

log = Logger()

__all__ = ["Options", "makeService", "CallcenterService", "StartupError"]


class Options(_BaseOptions):
    """``twistd callcenter``'s options: a bad value is one line on stderr and
    exit status 2, not twistd's whole usage text followed by the error."""

    def postOptions(self) -> None:
        try:
            super().postOptions()
        except usage.UsageError as e:
            sys.stderr.write(f"twistd callcenter: {e}\n")
            raise SystemExit(2) from None


class StartupError(Exception):
    """A start-up problem worth one line, not a traceback."""


# --------------------------------------------------------------------- ordered start


class StartInOrder(service.MultiService):
    """A MultiService that starts its children one after another, waiting for
    each child's ``whenReady()`` (when it has one) before starting the next.
    ``ready`` fires when all are up, or fails with the first error."""

    def __init__(self) -> None:
        super().__init__()
        self.ready: defer.Deferred[None] = defer.Deferred()

    def privilegedStartService(self) -> None:
        # No child binds before its turn: the web port opens after Redis loaded.
        service.Service.privilegedStartService(self)

    def startService(self) -> None:
        service.Service.startService(self)  # children are started below, in order
        defer.ensureDeferred(self._start_children()).chainDeferred(self.ready)

    async def _start_children(self) -> None:
        for child in list(self):
            if not self.running:
                return
            child.startService()
            when_ready = getattr(child, "whenReady", None)
            if when_ready is not None:
                await when_ready()

    def stopService(self) -> defer.Deferred:
        # Only what was started is stopped (a failed start leaves the rest idle).
        service.Service.stopService(self)
        started = [s for s in reversed(list(self)) if s.running]
        return defer.DeferredList(
            [defer.maybeDeferred(s.stopService) for s in started], consumeErrors=True
        )


# --------------------------------------------------------------------- children


class ReportService(service.Service):
    """The report file: open from construction, reopened on SIGHUP, closed last."""

    name = "report"

    def __init__(self, writer: ReportWriter, reactor: Any) -> None:
        self.writer = writer
        self.reactor = reactor
        self._old_hup: Any = None
        self._on_hup_too: list[Any] = []

    def also_on_hup(self, fn: Any) -> None:
        """Another file to reopen on SIGHUP (the users file, the audit file)."""
        self._on_hup_too.append(fn)

    def startService(self) -> None:
        super().startService()
        self._old_hup = signal.signal(signal.SIGHUP, self._on_hup)

    def _on_hup(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self.writer.reopen)
        for fn in self._on_hup_too:
            self.reactor.callFromThread(fn)

    def stopService(self) -> None:
        super().stopService()
        if self._old_hup is not None:
            signal.signal(signal.SIGHUP, self._old_hup)
            self._old_hup = None
        self.writer.close()


class _StartsAsync(service.Service):
    """A child whose start is asynchronous (``_start``); ``whenReady`` fires
    when it is done, so ``StartInOrder`` starts the next one only then."""

    _ready: defer.Deferred[None] | None = None

    def whenReady(self) -> defer.Deferred[None]:
        assert self._ready is not None
        return self._ready

    def startService(self) -> None:
        super().startService()
        self._ready = defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        raise NotImplementedError


class StoreService(_StartsAsync):
    """Redis: the saved state is loaded (or the outage logged) before the next
    child starts; the store writes the report through its outbox."""

    name = "store"

    def __init__(self, reactor: Any, options: _BaseOptions, center: Callcenter, report: ReportWriter,
                 health: Health | None = None) -> None:
        self.reactor = reactor
        self.options = options
        self.center = center
        self.report = report
        self.health = health
        self.store: Any = None
        self.turn_writer: TurnWriter | None = None  # the report's writer when Redis is unavailable
        self.parts: list[Any] = []  # more writers in each event's transaction (webhooks' outbox)

    async def _start(self) -> None:
        try:
            from callcenter.store.redis_store import RedisStore
        except ImportError as e:  # pragma: no cover - a broken installation
            log.warn("Redis store unavailable ({err}); state is kept in memory only", err=e)
            self.turn_writer = TurnWriter(self.reactor, self.report)
            self.center.subscribe(lambda ch: self.turn_writer.add(ch.transitions))
            for part in self.parts:
                part.restored()
                self.center.subscribe(part.on_changes)
            return
        # Each event's report lines go into its Redis transaction first, so a
        # SIGKILL between file and Redis loses or repeats no line (docs/redis.md).
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
        if self.health is not None:
            follow_store(self.health, self.store)
        for part in self.parts:
            self.store.add_part(part)
        await self.store.load()
        self.store.start()

    def stopService(self) -> defer.Deferred | None:
        super().stopService()
        if self.store is not None:
            return self.store.stop()
        if self.turn_writer is not None:
            self.turn_writer.flush(final=True)
        return None


class QueueLogService(service.Service):
    """``--queue-log``: follows Asterisk's queue_log and fills AMI gaps from it
    (callcenter/queuelog/catchup.py).  Built with the center, so the store
    restores its cursor; started after the store loaded, before AMI."""

    name = "queue-log"

    def __init__(self, reactor: Any, options: _BaseOptions, center: Callcenter, store: StoreService) -> None:
        from callcenter.queuelog.catchup import QueueLogCatchup

        self.store_service = store
        self.catchup = QueueLogCatchup(
            reactor,
            center,
            options["queue-log"],
            poll=options.get("queue-log-poll", 1.0),
            chunk=options.get("queue-log-chunk", 256 * 1024),
            max_held=options.get("queue-log-max-held", 100_000),
        )

    def cursor_part(self, prefix: str) -> Any:
        from callcenter.queuelog.persist import CursorPart

        return CursorPart(self.catchup.cursor, prefix)

    def attach(self, client: Any) -> None:
        """Before the center's own hooks: the catch-up must start ahead of the resync."""
        client.add_connect_hook(self.catchup.on_login)
        client.add_disconnect_hook(self.catchup.on_disconnect)

    def startService(self) -> None:
        super().startService()
        store = self.store_service.store
        self.catchup.start(store_loaded=store is not None and store.loaded)

    def stopService(self) -> None:
        super().stopService()
        self.catchup.stop()


class SimulatorService(_StartsAsync):
    """``--simulate``: the simulated PBX on a loopback port of its own."""

    name = "simulator"

    def __init__(self, reactor: Any, options: _BaseOptions) -> None:
        self.reactor = reactor
        self.options = options
        self.secret = secrets.token_hex(16)
        self.port: Any = None
        self.pbx: Any = None

    async def _start(self) -> None:
        from callcenter.simulator import start_simulator

        opts = self.options
        self.port, self.pbx = await start_simulator(
            self.reactor,
            "tcp:0:interface=127.0.0.1",
            username="callcenter",
            secret=self.secret,
            agents=opts["sim-agents"],
            calls_per_minute=opts["sim-calls-per-minute"],
            queues=tuple(opts["sim-queues"]),
            seed=opts["seed"],
            pause_reasons=tuple(opts.get("pause-reasons") or DEFAULT_REASONS),
        )
        address = self.port.getHost()
        log.info("simulated PBX listening on {host}:{port}", host=address.host, port=address.port)

    def endpoint(self) -> TCP4ClientEndpoint:
        return TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port.getHost().port)

    def stopService(self) -> defer.Deferred | None:
        super().stopService()
        if self.pbx is not None and hasattr(self.pbx, "stop"):
            self.pbx.stop()
        if self.port is not None:
            return defer.maybeDeferred(self.port.stopListening)
        return None


class PbxService(service.Service):
    """The AMI link: an ``AMIClient`` made when this service starts (the
    simulator's port is known only then), attached to the center."""

    name = "pbx"

    def __init__(
        self, reactor: Any, options: _BaseOptions, center: Callcenter, simulator: SimulatorService | None,
        health: Health | None = None,
    ) -> None:
        self.reactor = reactor
        self.options = options
        self.center = center
        self.simulator = simulator
        self.health = health
        self.client: Any = None
        self.queue_log: QueueLogService | None = None  # set by CallcenterService
        self.client_watchers: list[Any] = []
        if simulator is None:
            try:  # checked at construction: a bad --ami is a usage error
                self._endpoint = clientFromString(reactor, options["ami"])
            except Exception as e:
                raise usage.UsageError(f"--ami {options['ami']!r}: {e}") from None

    def startService(self) -> None:
        super().startService()
        from callcenter.ami.client import AMIClient

        if self.simulator is not None:
            endpoint, user, secret = self.simulator.endpoint(), "callcenter", self.simulator.secret
        else:
            endpoint, user, secret = self._endpoint, self.options["ami-user"], self.options["ami-secret"]
        self.client = AMIClient(self.reactor, endpoint, user, secret)
        if self.queue_log is not None:
            self.queue_log.attach(self.client)
        if self.health is not None:
            follow_pbx(self.health, self.client, self.center)  # before attach: see follow_pbx
        self.center.attach(self.client)
        for watch in self.client_watchers:  # metrics: its event counts, its logins
            watch(self.client)
        self.client.startService()

    def stopService(self) -> defer.Deferred | None:
        super().stopService()
        if self.client is not None:
            return self.client.stopService()
        return None


class AccessService(service.Service):
    """Who may see and do what (docs/security.md): the users file and its
    watcher, the login sessions in Redis.  Built at construction, so an unsafe
    exposure (off loopback without users) is a one-line usage error."""

    name = "access"

    def __init__(self, reactor: Any, options: _BaseOptions) -> None:
        from callcenter.web.wiring import AccessConfigError, make_access

        try:
            self.parts = make_access(options, reactor)
        except AccessConfigError as e:
            raise usage.UsageError(str(e)) from None

    def startService(self) -> None:
        super().startService()
        self.parts.start()

    def stopService(self) -> None:
        super().stopService()
        self.parts.stop()


@implementer(IStreamServerEndpoint)
class _ListenWatcher:
    """Wraps the dashboard's server endpoint so the service tree learns whether
    listening worked (``listening``), and a failure is our one line rather
    than the traceback ``StreamServerEndpointService`` would log."""

    def __init__(self, endpoint: IStreamServerEndpoint, description: str, option: str = "--listen") -> None:
        self._endpoint = endpoint
        self._description = description
        self._option = option
        self.listening: defer.Deferred[Any] = defer.Deferred()
        self.port: Any = None

    def listen(self, factory: Any) -> defer.Deferred:
        d = self._endpoint.listen(factory)

        def ok(port: Any) -> Any:
            self.port = port
            self.listening.callback(port)
            return port

        def failed(f: Any) -> None:
            self.listening.errback(StartupError(f"{self._option} {self._description!r}: {f.value}"))
            return None  # handled here; the service sees "no port"

        d.addCallbacks(ok, failed)
        return d


class WebService(StreamServerEndpointService):
    """The dashboard (``strports.service`` plus a readiness signal)."""

    name = "web"

    def __init__(self, reactor: Any, description: str, site: Any, option: str = "--listen") -> None:
        try:
            endpoint = serverFromString(reactor, description)
        except Exception as e:
            raise usage.UsageError(f"{option} {description!r}: {e}") from None
        self.watcher = _ListenWatcher(endpoint, description, option)
        self.scheme = "https" if description.startswith("ssl:") else "http"
        super().__init__(self.watcher, site)

    def whenReady(self) -> defer.Deferred[Any]:
        return self.watcher.listening


# --------------------------------------------------------------------- the root


class CallcenterService(StartInOrder):
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
        wrapup_default, wrapup_times = options.get("wrapup-time") or (0, {})
        if options["simulate"] and not wrapup_default and not wrapup_times:
            from callcenter.simulator.entities import QueueConfig

            # The simulated queues' wrapuptime, which (as on Asterisk) QueueStatus does not report.
            wrapup_default = int(QueueConfig().wrapuptime)
        self.center = Callcenter(
            reactor,
            sla=options["sla"],
            business_day=BusinessDay(options["day-starts-at"], tz),
            pause_reasons=PauseReasons(
                tuple(options.get("pause-reasons") or DEFAULT_REASONS),
                bool(options.get("pause-free-text")),
            ),
            wrapup_default=wrapup_default,
            wrapup_times=wrapup_times,
            agent_directory=options.get("agent-directory"),
            counters_max_unseen=options.get("counters-max-unseen", MAX_UNSEEN),
        )
        self.health = Health(reactor)
        self.report_service = ReportService(self.report, reactor)
        self.report_service.setServiceParent(self)
        self.store_service = StoreService(reactor, options, self.center, self.report, self.health)
        self.store_service.setServiceParent(self)
        self.webhooks = self._make_webhooks()
        self._add_metrics()
        if self.webhooks is not None:  # their figures on /metrics
            from callcenter.webhooks.metrics import WebhookCollector

            self.metrics.registry.register(WebhookCollector(self.webhooks))
        self.simulator_service = SimulatorService(reactor, options) if options["simulate"] else None
        if self.simulator_service is not None:
            self.simulator_service.setServiceParent(self)
        self.queue_log: QueueLogService | None = None
        if options.get("queue-log"):
            self.queue_log = QueueLogService(reactor, options, self.center, self.store_service)
            self.queue_log.setServiceParent(self)
            # Its cursor rides in each event's Redis transaction.
            self.store_service.parts.append(self.queue_log.cursor_part(options["redis-prefix"]))
        self.pbx = PbxService(reactor, options, self.center, self.simulator_service, self.health)
        self.pbx.queue_log = self.queue_log
        self.pbx.setServiceParent(self)
        self.access = AccessService(reactor, options)
        self.access.setServiceParent(self)
        self.report_service.also_on_hup(self.access.parts.reload)  # users file, audit file
        if options.get("agents"):  # names and teams, reread off the reactor thread
            from twisted.internet.threads import deferToThreadPool

            from callcenter.agents_file import AgentsReloader

            self.agents_reloader = AgentsReloader(
                options["agents"], self.center.set_agent_directory,
                len(options.get("agent-directory") or {}),
                lambda fn, path: deferToThreadPool(reactor, reactor.getThreadPool(), fn, path),
            )
            self.report_service.also_on_hup(self.agents_reloader.reload)
        self.web = WebService(reactor, options["listen"], self._make_site())
        self.web.setServiceParent(self)
        self._wire_metrics()
        # Last: READY=1 only once every port (dashboard, metrics) listens.
        self.notify = NotifyService(reactor, self.health, ready_timeout=options.get("ready-timeout", READY_TIMEOUT))
        self.notify.setServiceParent(self)
        self.ready.addCallbacks(self._started, self._start_failed)

    def _make_webhooks(self) -> Any:
        """Webhooks (docs/integrations.md): their outbox rides in the store's
        transactions, so it is handed to the store before the store loads."""
        hooks = self.options.get("webhook-hooks") or []
        if not hooks:
            return None
        from callcenter.webhooks.service import WebhookService

        webhooks = WebhookService(self.reactor, self.center, hooks, self.options["redis-prefix"])
        self.store_service.parts.append(webhooks.outbox)
        webhooks.setServiceParent(self)
        return webhooks

    # ------------------------------------------------------------ metrics (issue 13)

    def _add_metrics(self) -> None:
        """The collectors, right after the store (docs/operations.md)."""
        from callcenter.metrics.service import MetricsService

        opts = self.options
        self.metrics = MetricsService(
            self.center,
            sla_target=opts["sla-target"],
            agent_series=bool(opts.get("metrics-agents")),
            store=self.store_service,
        )
        self.metrics.setServiceParent(self)

    def _wire_metrics(self) -> None:
        """The other owners' hooks, and ``/metrics`` on its own port, last."""
        links = self.metrics.links
        links.report = self.report
        links.health = self.health
        self.pbx.client_watchers.append(links.watch_ami)
        links.watch_dashboards(self.web.factory.dashboards)
        self.metrics_web: WebService | None = None
        listen = self.options.get("metrics-listen") or ""
        if listen:
            self.metrics_web = WebService(
                self.reactor, listen, self.metrics.site(self.reactor), option="--metrics-listen"
            )
            self.metrics_web.setName("metrics-web")
            self.metrics_web.setServiceParent(self)

    # Views for tests and the benchmarks.
    @property
    def store(self) -> Any:
        return self.store_service.store

    @property
    def ami(self) -> Any:
        return self.pbx.client

    def _make_site(self) -> Any:
        from callcenter.web import make_site

        opts = self.options
        try:
            return make_site(
                self.center,
                static_dir=opts["static-dir"],
                # A broken install loses the page, not the service: `/` answers 503.
                on_missing_assets=lambda e: log.warn(
                    "{error}; the dashboard page answers 503, everything else runs", error=e
                ),
                access=self.access.parts.access,
                reactor=self.reactor,
                limits=_web_limits(opts),
                sla=opts["sla"],
                sla_target=opts["sla-target"],
                health=self.health,
                screen_pop=opts.get("screen-pop"),
                config=_page_config(opts, self.center),
            )
        except ValueError as e:
            raise usage.UsageError(str(e)) from None

    def startService(self) -> None:
        self.center.start()
        super().startService()

    def _started(self, _: Any) -> None:
        address = self.web.watcher.port.getHost()
        host = getattr(address, "host", "127.0.0.1")
        log.info(
            "dashboard at {scheme}://{host}:{port}/",
            scheme=self.web.scheme,
            host=host if host not in ("0.0.0.0", "::") else "127.0.0.1",
            port=getattr(address, "port", ""),
        )

    def _start_failed(self, failure: Any) -> None:
        err = failure.value
        message = str(err) if isinstance(err, StartupError) else f"{type(err).__name__}: {err}"
        if not isinstance(err, StartupError):
            log.failure("callcenter failed to start", failure)
        log.critical("callcenter cannot start: {message}", message=message)
        exit_after_stop(self.reactor, 1)

    def stopService(self) -> defer.Deferred:
        self.center.stop()
        return super().stopService()


def _web_limits(opts: Any) -> Any:
    from callcenter.web.limits import WebLimits

    defaults = WebLimits()
    return WebLimits(
        max_connections=opts.get("max-connections", defaults.max_connections),
        max_per_address=opts.get("max-per-address", defaults.max_per_address),
        fd_reserve=opts.get("fd-reserve", defaults.fd_reserve),
        hello_interval=opts.get("hello-interval", defaults.hello_interval),
        stats_interval=opts.get("stats-interval", defaults.stats_interval),
        request_timeout=opts.get("request-timeout", defaults.request_timeout),
        max_body=opts.get("max-body", defaults.max_body),
        log_interval=opts.get("log-interval", defaults.log_interval),
    )


def _page_config(opts: Any, center: Any) -> dict[str, Any]:
    """The CONFIG of every HELLO reply: the center's pause reasons, the alerts."""
    from callcenter.web.page_config import config_object

    return config_object(getattr(center, "pause_reasons", None), alerts=opts.get("alerts"))


def makeService(options: _BaseOptions) -> service.IService:
    return CallcenterService(options)
