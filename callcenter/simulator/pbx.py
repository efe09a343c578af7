"""``SimulatedPBX`` (model + AMI server + traffic) and ``start_simulator``."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTime

from callcenter.simulator.model import PBXModel
from callcenter.simulator.server import SHIPPED_READ, AMIServerFactory
from callcenter.simulator.traffic import Behaviour, Traffic


class SimulatedPBX:
    """A PBX that speaks AMI.

    ``reactor`` runs the sessions (auth timers); ``clock`` (default: the
    reactor) drives the model, so a ``task.Clock`` can run simulated hours in
    milliseconds.  With ``agents=0`` and ``calls_per_minute=0`` nothing
    happens unless an AMI client (or a test) makes it happen.

    By default it behaves like the shipped ``asterisk-config/``: the AMI user
    reads ``SHIPPED_READ`` (no ``system``, so no ``FullyBooted``) and the
    hangup handler leaves pauses alone.  ``read="all"`` and
    ``hangup_unpauses=True`` (with ``login_sends_name=False``: the rig's login
    had no ``name:`` header) reproduce the rig the traces were recorded on.
    Simulated agents pause with ``pause_reasons`` (the service's ``--pause-reasons``).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        username: str = "admin",
        secret: str = "",
        agents: int = 8,
        calls_per_minute: float | Mapping[str, float] = 4.0,
        queues: Sequence[str] = ("q-callcenter",),
        seed: int = 1,
        clock: IReactorTime | None = None,
        timestampevents: bool = True,
        legacy_pause_name: bool = False,
        auth_fail_delay: float = 1.0,
        epoch_offset: float | None = None,
        behaviour: Behaviour | None = None,
        read: str = SHIPPED_READ,
        hangup_unpauses: bool = False,
        pause_reasons: Sequence[str] | None = None,
        login_sends_name: bool = True,
    ) -> None:
        self.reactor = reactor
        self.clock = clock or reactor
        rng = random.Random(seed)
        self.model = PBXModel(self.clock, list(queues), rng=random.Random(rng.random()),
                              epoch_offset=epoch_offset, hangup_unpauses=hangup_unpauses,
                              login_sends_name=login_sends_name)
        self.factory = AMIServerFactory(
            self.model, reactor, {username: secret}, read=read, timestampevents=timestampevents,
            legacy_pause_name=legacy_pause_name, auth_fail_delay=auth_fail_delay)
        self.traffic = Traffic(self.model, agents=agents, calls_per_minute=calls_per_minute,
                               rng=random.Random(rng.random()), behaviour=behaviour,
                               **({"pause_reasons": pause_reasons} if pause_reasons is not None else {}))
        self.port: IListeningPort | None = None

    def start(self) -> None:
        self.traffic.start()

    def stop(self) -> defer.Deferred[None]:
        """Stop the traffic and every pending step, drop the sessions, stop listening."""
        self.traffic.stop()
        self.model.stop()
        self.factory.close_sessions()
        port, self.port = self.port, None
        # The owner may have stopped the port already (a second stopListening in
        # the same reactor turn would run its connectionLost twice).
        if port is not None and not getattr(port, "disconnecting", False):
            return defer.maybeDeferred(port.stopListening)
        return defer.succeed(None)

    def truth(self) -> dict[str, dict[str, float]]:
        """Ground-truth counters per queue (see ``model.GroundTruth``)."""
        return self.model.truth()


def start_simulator(
    reactor: IReactorTime,
    endpoint_description: str = "tcp:0:interface=127.0.0.1",
    *,
    username: str,
    secret: str,
    agents: int = 8,
    calls_per_minute: float | Mapping[str, float] = 4.0,
    queues: Sequence[str] = ("q-callcenter",),
    seed: int = 1,
    **options: object,
) -> defer.Deferred[tuple[IListeningPort, SimulatedPBX]]:
    """Listen for AMI on ``endpoint_description`` and start the simulated call center.

    Fires with ``(port, pbx)``; ``port.getHost().port`` is the port chosen for
    ``tcp:0``.  ``calls_per_minute`` is the arrival rate of *each* queue (or
    a mapping queue -> rate).  ``options`` go to ``SimulatedPBX`` (``clock``,
    ``timestampevents``, ``auth_fail_delay``, ...).  ``pbx.stop()`` undoes it all.
    """
    pbx = SimulatedPBX(reactor, username=username, secret=secret, agents=agents,
                       calls_per_minute=calls_per_minute, queues=queues, seed=seed,
                       **options)  # type: ignore[arg-type]
    d = serverFromString(reactor, endpoint_description).listen(pbx.factory)

    def listening(port: IListeningPort) -> tuple[IListeningPort, SimulatedPBX]:
        pbx.port = port
        pbx.start()
        return port, pbx

    return d.addCallback(listening)
