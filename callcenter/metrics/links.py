"""The service's own health: AMI, Redis, dashboards, report, as Prometheus metrics.

Every figure is a plain attribute read at scrape time or an integer bumped by a
hook the owner calls (the AMI client's listeners and connect hook, the Redis
store's and the fan-out's observer lists): nothing here changes what those
owners do, and the per-event cost is one dict increment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from callcenter.ami import events as ev
from callcenter.metrics.histogram import Buckets

#: Seconds: event read → frame written to the dashboards (one reactor turn).
PUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Seconds: an event's Redis transaction sent → answered.
REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class LinkCollector(Collector):
    """AMI, Redis, dashboard and report figures of one running service."""

    def __init__(self) -> None:
        self.ami: Any = None
        self.store: Any = None
        self.dashboards: Any = None
        self.report: Any = None
        # callcenter.health.Health, the one owner of "is the link up": when set,
        # the AMI and Redis up gauges are its view (what the page and /readyz say).
        self.health: Any = None
        self.events: dict[str, int] = {}
        self.logins = 0
        self.push = Buckets(PUSH_BUCKETS)
        self.redis_write = Buckets(REDIS_BUCKETS)

    # ------------------------------------------------------------ wiring

    def watch_ami(self, client: Any) -> None:
        """Count the events the service reads (the names it listens to: a
        bounded set) and the logins."""
        self.ami = client
        events = self.events
        for name in ev.TRANSLATORS:
            events.setdefault(name, 0)

            def count(_msg: Any, name: str = name) -> None:
                events[name] += 1

            client.add_listener(name, count)
        client.add_connect_hook(self._logged_in)

    def _logged_in(self) -> None:
        self.logins += 1

    def watch_store(self, store: Any) -> None:
        self.store = store
        if store is not None:
            store.write_observers.append(self.redis_write.observe)

    def watch_dashboards(self, dashboards: Any) -> None:
        self.dashboards = dashboards
        dashboards.push_observers.append(self.push.observe)

    # ------------------------------------------------------------ exposition

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Any]:
        ami, health = self.ami, self.health
        if health is not None:
            connected = health.pbx.up
            yield GaugeMetricFamily("callcenter_ami_synced", "1 once the PBX state was reconciled "
                                    "after the current AMI login (figures are live).",
                                    value=1 if health.pbx_ready else 0)
        else:
            connected = ami is not None and ami.connected
        yield GaugeMetricFamily("callcenter_ami_connected", "1 while the AMI session is logged in.",
                                value=1 if connected else 0)
        yield CounterMetricFamily("callcenter_ami_logins", "Successful AMI logins since start.",
                                  value=self.logins)
        yield CounterMetricFamily("callcenter_ami_reconnects", "AMI logins after the first one "
                                  "(each follows a lost connection).", value=max(0, self.logins - 1))
        events = CounterMetricFamily("callcenter_ami_events", "AMI events read, by event name "
                                     "(the names the service uses).", labels=["event"])
        for name, n in sorted(self.events.items()):
            events.add_metric([name], n)
        yield events
        yield _histogram("callcenter_push_latency_seconds", "Time from an AMI event's arrival "
                         "to the frame carrying it being written to the dashboards.", self.push)
        store = self.store
        if health is not None or store is not None:
            up = health.store.up if health is not None else store.state == "up"
            yield GaugeMetricFamily("callcenter_redis_up", "1 while Redis is connected and "
                                    "writable.", value=1 if up else 0)
        if store is not None:
            yield _histogram("callcenter_redis_write_latency_seconds", "Time from an event's "
                             "Redis transaction being sent to Redis answering it.", self.redis_write)
        dashboards = self.dashboards
        if dashboards is not None:
            yield GaugeMetricFamily("callcenter_dashboards_connected", "Dashboards that said "
                                    "HELLO and are connected.", value=len(dashboards.clients))
            yield CounterMetricFamily("callcenter_dashboards_dropped_slow", "Dashboards dropped "
                                      "for not reading (send buffer over its limit).",
                                      value=dashboards.dropped_slow)
        report = self.report
        if report is not None:
            yield CounterMetricFamily("callcenter_report_lines_written", "Report lines written "
                                      "to the report file since start.", value=report.lines_written)
            yield GaugeMetricFamily("callcenter_report_failing", "1 while writing the report "
                                    "file fails.", value=1 if report.failing else 0)


def _histogram(name: str, doc: str, buckets: Buckets) -> HistogramMetricFamily:
    h = HistogramMetricFamily(name, doc)
    h.add_metric([], *buckets.samples())
    return h
