"""Command-line options of ``twistd callcenter``.

Every option can also come from the environment as ``CALLCENTER_<NAME>``
(dashes become underscores), so a systemd unit can keep secrets in an
``EnvironmentFile``.  The command line wins over the environment.  Values are
checked here so that a bad one stops the start with one clear line.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.python import usage

from callcenter.auth.checkers import LOGIN_CONCURRENCY
from callcenter.auth.sessions import ABSOLUTE as SESSION_MAX
from callcenter.auth.sessions import IDLE as SESSION_IDLE
from callcenter.auth.source import WATCH_INTERVAL as USERS_WATCH
from callcenter.auth.throttle import ADDRESS_LIMIT as LOGIN_ADDRESS_LIMIT
from callcenter.auth.throttle import TABLE_SIZE as LOGIN_TABLE_SIZE
from callcenter.auth.throttle import USER_LIMIT as LOGIN_USER_LIMIT
from callcenter.auth.throttle import WINDOW as LOGIN_WINDOW
from callcenter.core.pause_reasons import DEFAULT_REASONS, parse_reasons
from callcenter.files import FileReadError, read_bounded
from callcenter.web.access import RECHECK as SESSION_RECHECK

ENV_PREFIX = "CALLCENTER_"
MAX_AMI_SECRET_FILE = 4 << 10  # bytes: a manager.conf secret, with room to spare

# `--help` shows the options in these sections, in this order.  A new option
# adds one line to OPTION_GROUPS (tests/core/test_plugin.py checks that every
# option has one); an option without one is listed under the last section.
GROUPS = (
    "PBX", "Web dashboard", "Access control", "Redis", "KPIs and report", "Webhooks", "Limits",
    "Simulator", "General",
)
OPTION_GROUPS = {
    "ami": "PBX",
    "ami-user": "PBX",
    "ami-secret": "PBX",
    "ami-secret-file": "PBX",
    "listen": "Web dashboard",
    "allowed-origins": "Web dashboard",
    "static-dir": "Web dashboard",
    "redis": "Redis",
    "redis-prefix": "Redis",
    "report": "KPIs and report",
    "sla": "KPIs and report",
    "sla-target": "KPIs and report",
    "day-starts-at": "KPIs and report",
    "timezone": "KPIs and report",
    "simulate": "Simulator",
    "sim-agents": "Simulator",
    "sim-calls-per-minute": "Simulator",
    "sim-queues": "Simulator",
    "seed": "Simulator",
    "users": "Access control",
    "public-url": "Access control",
    "audit": "Access control",
    "session-idle": "Access control",
    "session-max": "Access control",
    "session-recheck": "Access control",
    "login-attempts-user": "Access control",
    "login-attempts-address": "Access control",
    "login-window": "Access control",
    "login-table-size": "Access control",
    "login-concurrency": "Access control",
    "users-watch": "Access control",
    "trusted-proxy-header": "Access control",
    "trusted-proxies": "Access control",
    "report-wait": "KPIs and report",
    "report-fsync": "KPIs and report",
    "max-record-age": "Redis",
    "counters-max-unseen": "KPIs and report",  # issue 14: the PBX counters' correction
    "max-connections": "Limits",
    "max-per-address": "Limits",
    "fd-reserve": "Limits",
    "hello-interval": "Limits",
    "stats-interval": "Web dashboard",
    "request-timeout": "Limits",
    "max-body": "Limits",
    "log-interval": "Limits",
    # Queue-log catch-up (issue 14, docs/reliability.md).
    "queue-log": "PBX",
    "queue-log-poll": "PBX",
    "queue-log-chunk": "PBX",
    "queue-log-max-held": "PBX",
    # Issue 15: agent names, pause reasons, wrap-up.
    "agents": "PBX",
    "wrapup-time": "PBX",
    "pause-reasons": "Web dashboard",
    "pause-free-text": "Web dashboard",
    # The agent page (docs/integrations.md).
    "screen-pop-url": "Web dashboard",
    "screen-pop-auto": "Web dashboard",
    # Webhooks (issue 16, docs/integrations.md).
    "webhook": "Webhooks",
    "webhooks": "Webhooks",
    "webhook-secret": "Webhooks",
    "webhook-secret-file": "Webhooks",
    "webhook-events": "Webhooks",
    "webhook-timeout": "Webhooks",
    "webhook-max-queue": "Webhooks",
    "webhook-retry-initial": "Webhooks",
    "webhook-retry-max": "Webhooks",
    "webhook-jitter": "Webhooks",
    # Monitoring (issue 13; docs/operations.md).
    "metrics-listen": "General",
    "metrics-agents": "General",
    "alert-waiting": "Web dashboard",
    "alert-longest-wait": "Web dashboard",
    "alert-sla": "Web dashboard",
    "alert-pause-minutes": "Web dashboard",
    "ready-timeout": "General",  # issue 13: systemd readiness (docs/operations.md)
}


def env_name(option: str) -> str:
    return ENV_PREFIX + option.upper().replace("-", "_")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Real-time call-center CTI for Asterisk: follows the queues over AMI, keeps "
        "state and KPIs in Redis, serves the supervisors' dashboard and writes the "
        "report file. Every option may also be set in the environment variable "
        "shown in brackets."
    )

    optFlags = [
        ["simulate", None, "Run against the built-in simulated PBX instead of --ami."],
        ["screen-pop-auto", None, "Agent page: open the --screen-pop-url by itself when a call connects."],
        ["metrics-agents", None, "Metrics: also one series per agent (status, time in it); off: per queue only."],
        ["pause-free-text", None, "Let supervisors type a pause reason besides --pause-reasons."],
    ]

    optParameters = [
        ["ami", None, "tcp:host=127.0.0.1:port=5038", "AMI client endpoint (Twisted endpoint string)."],
        ["ami-user", None, "callcenter", "AMI user name."],
        ["ami-secret", None, None, "AMI secret (prefer --ami-secret-file or the environment)."],
        ["ami-secret-file", None, None, "File holding the AMI secret."],
        ["listen", None, "tcp:8080:interface=127.0.0.1", "Dashboard server endpoint (HTTP + WebSocket)."],
        ["redis", None, "redis://127.0.0.1:6379/0", "Redis URL: redis://[:password@]host:port/db."],
        ["redis-prefix", None, "callcenter:", "Prefix of every Redis key."],
        ["report", None, "report.csv", "Report file (appended, reopened on SIGHUP)."],
        ["sla", None, "10", "Service level: seconds within which a call should be answered."],
        ["sla-target", None, "80", "SLA percentage the dashboard colours against."],
        ["day-starts-at", None, "00:00", "Local time (HH:MM) at which the day's KPIs reset."],
        ["timezone", None, None, "Time zone for the report and the day boundary (default: system)."],
        ["allowed-origins", None, "", "Extra WebSocket origins allowed, comma-separated."],
        ["static-dir", None, None, "Directory of the dashboard page (default: the copy installed with the package, else the checkout's static/)."],
        # Access control (docs/security.md).
        ["users", None, None, "Users file (callcenter-users); without it the page runs open, on loopback only."],
        ["public-url", None, "", "URL(s) users reach the dashboard by, comma-separated (default: loopback)."],
        ["audit", None, None, "Audit file: one line per command (appended, reopened on SIGHUP)."],
        ["session-idle", None, str(SESSION_IDLE), "Seconds without use after which a login session ends."],
        ["session-max", None, str(SESSION_MAX), "Seconds after login at which a session ends anyway."],
        ["session-recheck", None, str(SESSION_RECHECK), "Seconds between re-checks of open dashboards' sessions."],
        ["login-attempts-user", None, str(LOGIN_USER_LIMIT), "Failed logins per user name per --login-window."],
        ["login-attempts-address", None, str(LOGIN_ADDRESS_LIMIT), "Failed logins per client address per --login-window."],
        ["login-window", None, str(LOGIN_WINDOW), "Seconds a login lock-out lasts."],
        ["login-table-size", None, str(LOGIN_TABLE_SIZE), "User names and addresses the login throttle remembers."],
        ["login-concurrency", None, str(LOGIN_CONCURRENCY), "Password checks (argon2id, 64 MiB each) run at once."],
        ["users-watch", None, str(USERS_WATCH), "Seconds between looks at the users file for changes (0: SIGHUP only)."],
        ["trusted-proxy-header", None, None, "Header holding the user name set by an authenticating proxy."],
        ["trusted-proxies", None, "", "Addresses/networks of those proxies, comma-separated (e.g. 127.0.0.1/32)."],
        # Hardening bounds (docs/reliability.md); defaults are the named constants.
        ["report-wait", None, "2", "Seconds a report line waits for Redis before it goes to the file through the local journal."],
        ["report-fsync", None, "on", "fsync the report (and journal) after each batch: on or off."],
        ["max-record-age", None, "400", "Days: a saved record with a time older than this (or over a day ahead) is skipped."],
        ["max-connections", None, "512", "Dashboard/HTTP connections open at once; more are closed at accept."],
        ["max-per-address", None, "32", "Dashboard/HTTP connections open at once from one address."],
        ["fd-reserve", None, "64", "File descriptors kept free for Redis, AMI and the report (lowers --max-connections if needed)."],
        ["hello-interval", None, "1", "Seconds: a HELLO within this of the last one is answered from the same snapshot."],
        ["stats-interval", None, "0.5", "Seconds between two STATS pushes at most (agents and calls go at once; 0: STATS with every push that changes it)."],
        ["request-timeout", None, "10", "Seconds an HTTP client has to send its request line and headers (408 after)."],
        ["max-body", None, "4096", "Bytes of HTTP request body accepted (413 above, before reading it)."],
        ["log-interval", None, "60", "Seconds a repeated warning of one kind is counted before its 'N more like this' line."],
        # Queue-log catch-up (issue 14, docs/reliability.md).
        ["queue-log", None, None, "Asterisk's queue_log to fill AMI gaps from (default: off)."],
        ["queue-log-poll", None, "1", "Seconds between reads of the queue log."],
        ["queue-log-chunk", None, "262144", "Bytes of the queue log read per reactor turn."],
        ["queue-log-max-held", None, "100000", "AMI events held back at most while a catch-up runs."],
        # Issue 14 (docs/reliability.md, "Without a queue log").
        ["counters-max-unseen", None, "10000", "Callers per queue a reconcile may count as come and gone unseen (from Asterisk's queue counters); 0 turns the counters' correction off."],
        # Health (issue 13, docs/operations.md).
        ["ready-timeout", None, "60", "Seconds after the dashboard opens before systemd is told READY=1 without a reconciled PBX link."],
        # The agent page (docs/integrations.md).
        ["screen-pop-url", None, None, "Agent page: CRM address for the call, e.g. https://crm/search?phone={callerid} (http/https only)."],
        # Webhooks (docs/integrations.md); --webhook and --webhook-secret are opt_ methods below.
        ["webhooks", None, None, "Webhooks file (TOML, or JSON if named *.json): [[hook]] tables with url, events, secret_file or secret_env, timeout, max_queue."],
        ["webhook-secret-file", None, None, "File holding the HMAC secret of the --webhook URLs."],
        ["webhook-events", None, "all", "Events the --webhook URLs get: all, or some of call.connected,call.ended,agent.status."],
        ["webhook-timeout", None, "10", "Seconds one webhook POST may take, answer included."],
        ["webhook-max-queue", None, "1000", "Undelivered events kept per hook; beyond, the oldest is dropped (logged)."],
        ["webhook-retry-initial", None, "1", "Seconds before a failed webhook POST is retried; doubles per failure."],
        ["webhook-retry-max", None, "300", "Longest wait in seconds between two tries of a webhook POST."],
        ["webhook-jitter", None, "0.2", "Random factor on each retry wait: within [1-j, 1+j] (0: none)."],
        ["sim-agents", None, "8", "Simulator: number of agents."],
        ["sim-calls-per-minute", None, "4", "Simulator: caller arrivals per minute per queue."],
        ["sim-queues", None, "q-callcenter", "Simulator: queue names, comma-separated."],
        ["seed", None, "1", "Simulator: random seed."],
        # Issue 15 (docs/protocol.md: AGENT name/team/wrapup_until, CONFIG).
        ["agents", None, None, "CSV or TOML file: agent id -> name, team (wins over the phone's caller-id name; reread on SIGHUP)."],
        ["wrapup-time", None, "0", "Wrap-up seconds after a call, as queues.conf's wrapuptime (QueueStatus does not report it): N, or queue=N,... (a member's own Wrapuptime wins)."],
        ["pause-reasons", None, ",".join(DEFAULT_REASONS), "Pause reasons the dashboard offers, comma-separated (compared ignoring case)."],
        # Monitoring (docs/operations.md).
        ["metrics-listen", None, "", "Prometheus /metrics endpoint (Twisted endpoint string, e.g. tcp:9464:interface=127.0.0.1); empty: off. Bind loopback or a management network."],
        ["alert-waiting", None, "0", "Page alert: more calls waiting in a queue than this (0: off)."],
        ["alert-longest-wait", None, "0", "Page alert: a caller waiting longer than this many seconds (0: off)."],
        ["alert-sla", None, "0", "Page alert: today's SLA of a queue below this percentage (0: off)."],
        ["alert-pause-minutes", None, "", "Page alert: pauses longer than this, per reason, e.g. Lunch=60,Break=15,*=10 (*: any other; empty: off)."],
    ]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        environ = os.environ if environ is None else environ
        self._environ = environ
        self["webhook"] = []
        # Environment values become the defaults; the command line overrides them.
        for long, _short, _default, _doc in self.optParameters:
            value = environ.get(env_name(long))
            if value is not None:
                self[long] = value
        for long, _short, _doc in self.optFlags:
            value = environ.get(env_name(long), "").strip().lower()
            if value in ("1", "true", "yes", "on"):
                self[long] = True
        self.docs.update(
            {long: f"{doc} [{env_name(long)}]" for long, _s, _d, doc in self.optParameters}
        )
        self.docs.update({long: f"{doc} [{env_name(long)}]" for long, _s, doc in self.optFlags})
        for long in ("webhook", "webhook-secret"):
            self.docs[long] = f"{self.docs[long]} [{env_name(long)}]"

    def getUsage(self, width: int | None = None) -> str:
        """Twisted's usage text, with the options in sections (GROUPS)."""
        width = width or int(os.environ.get("COLUMNS", "80"))
        short = {long: key for key, long in self.synonyms.items() if key != long and len(key) == 1}
        sections: dict[str, list[dict]] = {group: [] for group in GROUPS}
        order = list(OPTION_GROUPS)
        for opt in sorted(self.longOpt, key=lambda o: (order.index(o.rstrip("="))
                                                       if o.rstrip("=") in order else len(order))):
            name = opt.rstrip("=")
            sections[OPTION_GROUPS.get(name, GROUPS[-1])].append({
                "long": name,
                "short": short.get(name),
                "doc": self.docs[name],
                "optType": "parameter" if opt.endswith("=") else "flag",
                "default": self.defaults.get(name),
            })
        return "\n" + "\n".join(textwrap.wrap(self.longdesc, width)) + "\n" + "".join(
            f"\n{group}:\n{''.join(usage.docMakeChunks(opts, width))}"
            for group, opts in sections.items() if opts
        )

    def opt_webhook(self, url: str) -> None:
        """URL to POST call and agent events to (repeatable; secret from --webhook-secret-file or the environment)."""
        self["webhook"].append(url)

    def opt_webhook_secret(self, _value: str) -> None:
        """Not accepted here (a secret on the command line shows in ps): use --webhook-secret-file or the environment."""
        raise usage.UsageError(
            "--webhook-secret: a secret on the command line is visible to every user (ps, "
            f"shell history); put it in --webhook-secret-file or {env_name('webhook-secret')}"
        )

    def opt_version(self) -> None:
        """Print the version and exit."""
        from callcenter import __version__

        print(f"callcenter {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        self["sla"] = _positive_int(self["sla"], "--sla")
        self["sla-target"] = _percent(self["sla-target"], "--sla-target")
        self["sim-agents"] = _positive_int(self["sim-agents"], "--sim-agents")
        self["sim-calls-per-minute"] = _positive_float(
            self["sim-calls-per-minute"], "--sim-calls-per-minute"
        )
        self["seed"] = _int(self["seed"], "--seed")
        for name in ("report-wait", "max-record-age", "hello-interval", "request-timeout", "log-interval",
                     "ready-timeout"):
            self[name] = _positive_float(self[name], "--" + name)
        for name in ("max-connections", "max-per-address", "fd-reserve", "max-body"):
            self[name] = _positive_int(self[name], "--" + name)
        self["queue-log-poll"] = _positive_float(self["queue-log-poll"], "--queue-log-poll")
        for name in ("queue-log-chunk", "queue-log-max-held"):
            self[name] = _positive_int(self[name], "--" + name)
        if self["queue-log-chunk"] <= 4096:
            raise usage.UsageError("--queue-log-chunk must be over 4096 bytes (a queue_log line's bound)")
        self["report-fsync"] = _on_off(self["report-fsync"], "--report-fsync")
        self["stats-interval"] = _non_negative_float(self["stats-interval"], "--stats-interval")
        self["counters-max-unseen"] = _non_negative_int(self["counters-max-unseen"], "--counters-max-unseen")
        self["sim-queues"] = _names(self["sim-queues"], "--sim-queues")
        self._check_alerts()
        self["day-starts-at"] = _hhmm(self["day-starts-at"])
        self["timezone"] = _timezone(self["timezone"])
        self["allowed-origins"] = [o.strip() for o in self["allowed-origins"].split(",") if o.strip()]
        self._check_access()
        self._check_screen_pop()
        _check_redis_url(self["redis"])
        if not self["redis-prefix"]:
            raise usage.UsageError("--redis-prefix must not be empty")
        if not self["simulate"]:
            self["ami-secret"] = self._read_secret()
        self._check_report()
        self._check_agent_state()
        self._check_webhooks()

    def _check_agent_state(self) -> None:
        from callcenter.agents_file import AgentsFileError, load_agents

        if isinstance(self["pause-reasons"], str):
            try:
                self["pause-reasons"] = parse_reasons(self["pause-reasons"])
            except ValueError as e:
                raise usage.UsageError(f"--pause-reasons: {e}") from None
        if isinstance(self["wrapup-time"], str):
            self["wrapup-time"] = _wrapup_times(self["wrapup-time"])
        if isinstance(self["agents"], str):
            try:
                self["agent-directory"] = load_agents(self["agents"])
            except AgentsFileError as e:
                raise usage.UsageError(str(e)) from None

    def _check_webhooks(self) -> None:
        """``webhook-hooks``: the checked hooks (HookConfig list), secrets read."""
        from callcenter.webhooks import config as wh

        for name in ("webhook-timeout", "webhook-retry-initial", "webhook-retry-max"):
            self[name] = _positive_float(self[name], "--" + name)
        self["webhook-max-queue"] = _positive_int(self["webhook-max-queue"], "--webhook-max-queue")
        self["webhook-jitter"] = _non_negative_float(self["webhook-jitter"], "--webhook-jitter")
        if self["webhook-jitter"] >= 1:
            raise usage.UsageError(f"--webhook-jitter must be below 1, not {self['webhook-jitter']!r}")
        urls = list(self["webhook"]) or self._environ.get(env_name("webhook"), "").split()
        try:
            defaults = wh.HookConfig(
                name="", url="", secret=b"",
                events=wh.parse_events(self["webhook-events"], "--webhook-events"),
                timeout=self["webhook-timeout"],
                max_queue=self["webhook-max-queue"],
                retry_initial=self["webhook-retry-initial"],
                retry_max=self["webhook-retry-max"],
                jitter=self["webhook-jitter"],
            )
            hooks = []
            if urls:
                hooks += self._url_hooks(urls, defaults)
            if self["webhooks"]:
                hooks += wh.load_hooks_file(self["webhooks"], defaults, self._environ)
            self["webhook-hooks"] = wh.check_unique(hooks)
        except wh.ConfigError as e:
            raise usage.UsageError(str(e)) from None

    def _url_hooks(self, urls: list[str], defaults: object) -> list[object]:
        from dataclasses import replace

        from callcenter.webhooks import config as wh

        if self["webhook-secret-file"]:
            secret = wh.read_secret_file(self["webhook-secret-file"], "--webhook-secret-file")
        elif self._environ.get(env_name("webhook-secret")):
            secret = wh.secret_from_env(env_name("webhook-secret"), self._environ, "--webhook")
        else:
            raise wh.ConfigError(
                f"--webhook needs a secret: give --webhook-secret-file or set {env_name('webhook-secret')}"
            )
        return [
            replace(defaults, name=wh.default_name(u), url=wh.check_url(u, "--webhook"), secret=secret)  # type: ignore[type-var]
            for u in urls
        ]

    def _check_alerts(self) -> None:
        from callcenter.alerts import AlertThresholds, parse_pause_minutes

        for name in ("alert-waiting", "alert-longest-wait"):
            self[name] = 0 if self[name] in (0, "0") else _positive_int(self[name], f"--{name} (or 0)")
        self["alert-sla"] = 0.0 if self["alert-sla"] in (0, "0") else _percent(self["alert-sla"], "--alert-sla (or 0)")
        try:
            pauses = parse_pause_minutes(self["alert-pause-minutes"] or "")
        except ValueError as e:
            raise usage.UsageError(f"--alert-pause-minutes: {e}") from None
        self["alerts"] = AlertThresholds(
            self["alert-waiting"], self["alert-longest-wait"], self["alert-sla"], pauses)

    def _check_access(self) -> None:
        from callcenter.web.origin import parse_public_url

        for name in ("session-idle", "session-max", "login-window"):
            self[name] = _positive_float(self[name], f"--{name}")
        for name in ("session-recheck", "users-watch"):
            self[name] = _non_negative_float(self[name], f"--{name}")
        for name in ("login-attempts-user", "login-attempts-address", "login-table-size",
                     "login-concurrency"):
            self[name] = _positive_int(self[name], f"--{name}")
        if isinstance(self["public-url"], str):
            self["public-url"] = [u.strip() for u in self["public-url"].split(",") if u.strip()]
        for url in self["public-url"]:
            try:
                parse_public_url(url)
            except ValueError as e:
                raise usage.UsageError(str(e)) from None
        if isinstance(self["trusted-proxies"], str):
            self["trusted-proxies"] = [p.strip() for p in self["trusted-proxies"].split(",") if p.strip()]
        if self["trusted-proxy-header"]:
            if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", self["trusted-proxy-header"]):
                raise usage.UsageError(f"--trusted-proxy-header {self['trusted-proxy-header']!r} is not a header name")
            if not self["users"]:
                raise usage.UsageError("--trusted-proxy-header needs --users (roles come from it)")
            if not self["trusted-proxies"]:
                raise usage.UsageError("--trusted-proxy-header needs --trusted-proxies")
        from callcenter.auth.checkers import parse_networks
        from callcenter.web.wiring import AccessConfigError, check_exposure

        try:
            parse_networks(self["trusted-proxies"])
            check_exposure(self["listen"], self["users"], self["public-url"])
        except (ValueError, AccessConfigError) as e:
            raise usage.UsageError(str(e)) from None

    def _check_screen_pop(self) -> None:
        """``screen-pop`` becomes the checked ScreenPop (or None)."""
        from callcenter.web.screen_pop import ScreenPop

        template = self["screen-pop-url"]
        if not template:
            if self["screen-pop-auto"]:
                raise usage.UsageError("--screen-pop-auto needs --screen-pop-url")
            self["screen-pop"] = None
            return
        try:
            self["screen-pop"] = ScreenPop.parse(template, auto=bool(self["screen-pop-auto"]))
        except ValueError as e:
            raise usage.UsageError(str(e)) from None

    def _check_report(self) -> None:
        from callcenter.report import ReportWriter, ReportWriterError

        writer = ReportWriter(self["report"])
        try:
            writer.open()
        except ReportWriterError as e:
            raise usage.UsageError(str(e)) from None
        writer.close()

    def _read_secret(self) -> str:
        path = self["ami-secret-file"]
        if path:
            try:
                secret = read_bounded(path, MAX_AMI_SECRET_FILE).strip()
            except FileReadError as e:
                raise usage.UsageError(f"--ami-secret-file {e}") from None
            if not secret:
                raise usage.UsageError(f"--ami-secret-file {path} is empty")
            return secret
        if self["ami-secret"]:
            return self["ami-secret"]
        raise usage.UsageError(
            f"no AMI secret: give --ami-secret-file or set {env_name('ami-secret')}"
        )


def _wrapup_times(value: str) -> tuple[int, dict[str, int]]:
    """``--wrapup-time``: ``N`` or ``q-sales=5,q-support=10[,N]`` -> (default, per queue)."""
    default, per_queue = 0, {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        queue, sep, seconds = part.rpartition("=")
        if sep and not _QUEUE_NAME.match(queue.strip()):
            raise usage.UsageError(f"--wrapup-time: {queue!r} is not a queue name")
        if not re.fullmatch(r"[0-9]{1,5}", seconds.strip()) or int(seconds) > 86400:
            raise usage.UsageError(f"--wrapup-time: {part!r} needs whole seconds (0 to 86400)")
        if sep:
            per_queue[queue.strip()] = int(seconds)
        else:
            default = int(seconds)
    return default, per_queue


def _int(value: str | int, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise usage.UsageError(f"{name} must be a whole number, not {value!r}") from None


def _non_negative_int(value: str | int, name: str) -> int:
    n = _int(value, name)
    if n < 0:
        raise usage.UsageError(f"{name} must be 0 or more, not {value!r}")
    return n


def _positive_int(value: str | int, name: str) -> int:
    n = _int(value, name)
    if n <= 0:
        raise usage.UsageError(f"{name} must be greater than 0, not {value!r}")
    return n


def _positive_float(value: str | float, name: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise usage.UsageError(f"{name} must be a number, not {value!r}") from None
    if not f > 0 or f != f or f == float("inf"):
        raise usage.UsageError(f"{name} must be greater than 0, not {value!r}")
    return f


def _non_negative_float(value: str | float, name: str) -> float:
    if value in (0, "0", 0.0):
        return 0.0
    return _positive_float(value, name + " (or 0)")


def _on_off(value: str | bool, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "on", "yes", "true"):
        return True
    if text in ("0", "off", "no", "false"):
        return False
    raise usage.UsageError(f"{name} must be on or off, not {value!r}")


def _percent(value: str | float, name: str) -> float:
    f = _positive_float(value, name)
    if f > 100:
        raise usage.UsageError(f"{name} must be at most 100, not {value!r}")
    return f


_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _names(value: str | list[str], name: str) -> list[str]:
    if isinstance(value, list):
        return value
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names or not all(_QUEUE_NAME.match(n) for n in names):
        raise usage.UsageError(f"{name} must be comma-separated queue names, not {value!r}")
    return names


def _hhmm(value: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, tuple):
        return value
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise usage.UsageError(f"--day-starts-at must be HH:MM (00:00 to 23:59), not {value!r}")
    return int(m.group(1)), int(m.group(2))


def _timezone(value: str | None) -> ZoneInfo | None:
    if value is None or isinstance(value, ZoneInfo):
        return value
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise usage.UsageError(f"--timezone {value!r} is not a known time zone") from None


def _check_redis_url(url: str) -> None:
    from callcenter.store.redis_url import parse_redis_url

    try:
        parse_redis_url(url)
    except ValueError as e:
        raise usage.UsageError(str(e)) from None
