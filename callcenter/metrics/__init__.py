"""Prometheus metrics (``--metrics-listen``): what the service knows, at scrape time.

``center.py`` reads the Callcenter (queues, agents, the day's KPIs) and turns
the Tally's day counters into monotonic counters; ``links.py`` reports the
service's own links (AMI, Redis, dashboards, report); ``service.py`` serves
``/metrics`` on its own endpoint.  Names and meanings: docs/operations.md.
"""

from callcenter.metrics.center import CenterCollector
from callcenter.metrics.links import LinkCollector

__all__ = ["CenterCollector", "LinkCollector"]
