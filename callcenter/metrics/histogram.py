"""A histogram's bucket counts, kept as plain integers on the reactor thread.

prometheus_client's own ``Histogram`` takes a lock on every observation; ours
are all made on the reactor thread and read there at scrape time, so a list
of counts does the job for a fraction of the cost.
"""

from __future__ import annotations


class Buckets:
    """Counts per bucket (upper bounds ``bounds``, then +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float, times: int = 1) -> None:
        bounds = self.bounds
        i = 0
        while i < len(bounds) and value > bounds[i]:
            i += 1
        self.counts[i] += times
        self.total += value * times

    def samples(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative ``(le, count)`` pairs and the sum, as HistogramMetricFamily takes them."""
        out, running = [], 0
        for bound, count in zip((*(repr(b) for b in self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out, self.total
