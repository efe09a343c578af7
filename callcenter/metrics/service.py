"""``--metrics-listen``: ``/metrics`` on an endpoint of its own, off by default.

prometheus_client's Twisted resource is a ``WSGIResource`` on the reactor's
thread pool, so the collectors would read the Callcenter's state from another
thread while events change it.  ``MetricsPage`` does the same exposition
(``generate_latest``) on the reactor thread instead, where that state lives;
a scrape costs O(queues + agents), nothing per event.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from twisted.application import service
from twisted.web import resource, server

from callcenter.metrics.center import CenterCollector
from callcenter.metrics.links import LinkCollector

#: generate_latest writes the classic text format (0.0.4), which every
#: Prometheus since 2.0 reads; the library's newest content type would name 1.0.0.
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class MetricsPage(resource.Resource):
    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: server.Request) -> bytes:
        if request.postpath not in ([b"metrics"], [b"metrics", b""]):
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found: the metrics are at /metrics\n"
        output = generate_latest(self.registry)
        request.setHeader(b"content-type", CONTENT_TYPE)
        request.setHeader(b"cache-control", b"no-store")
        return output


def make_registry(center: Any, *, sla_target: float = 80.0, agent_series: bool = False
                  ) -> tuple[CollectorRegistry, CenterCollector, LinkCollector]:
    """A registry of its own (never the process-global one) with both collectors."""
    registry = CollectorRegistry(auto_describe=False)
    figures = CenterCollector(center, sla_target=sla_target, agent_series=agent_series)
    links = LinkCollector()
    registry.register(figures)
    registry.register(links)
    return registry, figures, links


class MetricsService(service.Service):
    """The collectors: started right after the store has loaded (the restored
    counts are the counters' base), before the PBX link can bring an event.
    ``/metrics`` itself is served by a ``WebService`` of the root, on
    ``--metrics-listen``."""

    name = "metrics"

    def __init__(self, center: Any, *, sla_target: float = 80.0, agent_series: bool = False,
                 store: Any = None) -> None:
        self.registry, self.figures, self.links = make_registry(
            center, sla_target=sla_target, agent_series=agent_series)
        self._store = store  # the StoreService: its RedisStore exists once it started

    def site(self, reactor: Any) -> server.Site:
        site = server.Site(MetricsPage(self.registry), reactor=reactor)
        site.noisy = False
        return site

    def startService(self) -> None:
        super().startService()
        self.figures.start()
        store = getattr(self._store, "store", None)
        if store is not None:
            self.links.watch_store(store)

    def stopService(self) -> None:
        super().stopService()
        self.figures.stop()
