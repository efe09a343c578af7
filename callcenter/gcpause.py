"""Pausing Python's cyclic garbage collector around one bounded bulk step.

A restore builds tens of thousands of objects in one go (30,000 records at
start, 30,000 AMI list items at a resync).  Every few hundred allocations
the collector runs, and its oldest generation re-walks every object alive:
measured on a 10,000-agent restore, the QueueStatus snapshot took 1.56 s of
CPU with the collector on and 0.53 s with it paused.  Nothing these steps
build is a cycle to collect, so the pause frees nothing late; it is only
ever held for one synchronous step (never across a reactor turn), and
``freeze`` moves what a start loaded out of the collector's view for good
(the long-lived state, which it would otherwise re-walk for the life of the
process).  Never used on the per-event path.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """No cyclic collection inside the block (nested blocks are fine)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def freeze_loaded_state() -> None:
    """After a start's restore: what is alive now stays, so stop re-walking it."""
    gc.freeze()
