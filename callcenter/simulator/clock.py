"""Running the simulated PBX on a ``twisted.internet.task.Clock``.

``Clock.advance(n)`` moves time by ``n`` first and then runs what is due, so
anything scheduled from those calls counts from the *end* of the step: a big
step stretches every delay.  ``run_until`` instead jumps from one due call
to the next, so a simulated hour runs exactly as it would in real time.
"""

from __future__ import annotations

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
