"""The webhooks' figures for ``/metrics`` (issue 13's registry): per hook, what
was delivered, refused, retried and dropped, and what waits.  Read at scrape
time from the senders' and queues' own counters; nothing per event."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class WebhookCollector(Collector):
    def __init__(self, webhooks: Any) -> None:
        self.webhooks = webhooks  # the WebhookService: its senders exist once it started

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Any]:
        families = {
            "delivered": CounterMetricFamily(
                "callcenter_webhook_delivered", "Events a hook's receiver accepted (2xx).", labels=["hook"]),
            "refused": CounterMetricFamily(
                "callcenter_webhook_refused", "Events a receiver refused with a 4xx (not retried).",
                labels=["hook"]),
            "retries": CounterMetricFamily(
                "callcenter_webhook_retries", "POSTs that failed and were retried (5xx, timeout, "
                "connection error).", labels=["hook"]),
            "dropped": CounterMetricFamily(
                "callcenter_webhook_dropped", "Undelivered events dropped because the hook's queue "
                "was full.", labels=["hook"]),
            "queued": GaugeMetricFamily(
                "callcenter_webhook_queued", "Events waiting for delivery.", labels=["hook"]),
        }
        for sender in self.webhooks.senders:
            name = [sender.hook.name]
            families["delivered"].add_metric(name, sender.delivered)
            families["refused"].add_metric(name, sender.refused)
            families["retries"].add_metric(name, sender.retries)
            families["dropped"].add_metric(name, sender.queue.dropped)
            families["queued"].add_metric(name, len(sender.queue.entries))
        yield from families.values()


__all__ = ["WebhookCollector"]
