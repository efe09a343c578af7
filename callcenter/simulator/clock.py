"""Running the simulated PBX on a ``twisted.internet.task.Clock``.

``Clock.advance(n)`` moves time by ``n`` first and then runs what is due, so
anything scheduled from those calls counts from the *end* of the step: a big
step stretches every delay.  ``run_until`` instead jumps from one due call
to the next, so a simulated hour runs exactly as it would in real time.
"""

from __future__ import annotations

import bisect

from twisted.internet.base import DelayedCall
from twisted.internet.task import Clock


def run_until(clock: Clock, when: float) -> None:
    """Run every call due up to ``when`` at its own time, then set the time to ``when``."""
    calls = clock.calls  # kept sorted by due time
    while calls and calls[0].getTime() <= when:
        clock.advance(max(0.0, calls[0].getTime() - clock.seconds()))
    if when > clock.seconds():
        clock.advance(when - clock.seconds())


def run_for(clock: Clock, seconds: float) -> None:
    run_until(clock, clock.seconds() + seconds)


class FastClock(Clock):
    """A ``Clock`` that keeps its calls sorted as they are added instead of
    re-sorting the whole list after every ``callLater`` and every call run.

    Same order for equal times (insertion order), so a run gives the same
    events as on ``Clock``.  Only for code that does not ``reset``/``delay``
    its calls (the simulator does not); used by the benchmark, where the
    re-sorting of thousands of pending timers would dominate.
    """

    def callLater(self, delay: float, callable, *args, **kw):  # noqa: A002
        dc = DelayedCall(self.seconds() + delay, callable, args, kw, self.calls.remove,
                         lambda c: None, self.seconds)
        bisect.insort_right(self.calls, dc, key=DelayedCall.getTime)
        return dc

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        calls = self.calls
        while calls and calls[0].getTime() <= self.rightNow:
            call = calls.pop(0)
            call.called = 1
            call.func(*call.args, **call.kw)
