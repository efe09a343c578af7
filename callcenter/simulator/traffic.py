"""Life for the simulated call center: callers arriving, agents coming and going.

Uses only the model's public operations, the same an AMI client has
(``originate`` of the feature codes, ``queue_pause``) plus ``add_caller``
for callers, so everything it does shows up on the wire exactly like on the
rig.  Callers arrive as a Poisson process per queue; each agent logs in at
the start (staggered over a few seconds), takes breaks now and then with a
pause reason, and rarely logs out for a while.  A few agents start on a
break, so that calls queue, get answered and get abandoned within the first
simulated minute.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from twisted.internet.interfaces import IDelayedCall

from callcenter.simulator.model import DIALPLAN_DELAY, PBXModel

# Phones send what agents key in: the service's --pause-reasons in any case
# (compared ignoring case), and now and then no reason at all.
PAUSE_REASONS = ("Break", "Lunch", "Training", "Coaching")
# Display names the simulated phones carry as their caller-id name.
FIRST_NAMES = (
    "Alice", "Bruno", "Chloé", "David", "Emma", "Farid", "Gina", "Hugo", "Inès", "Jonas",
    "Karin", "Léo", "Maya", "Nils", "Olga", "Paul", "Quentin", "Rosa", "Sami", "Tara",
    "Ugo", "Vera", "Wim", "Xenia", "Yann", "Zoé",
)
# Sixteen initials, so first name + initial is distinct for 26 x 16 agents.
SURNAMES = ("Martin", "Bernard", "Dubois", "Laurent", "Simon", "Roux", "Fournier", "Girard",
            "Petit", "Vincent", "Henry", "Noel", "Caron", "Thomas", "Adam", "Kahn")


def agent_name(i: int) -> str:
    """The ``i``-th agent's name, e.g. "Maya D." (no longer than "Agent 1001", so the
    page's layouts are tested as sized): distinct for the first 416 agents."""
    return f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {SURNAMES[(i // len(FIRST_NAMES)) % len(SURNAMES)][0]}."


@dataclass
class Behaviour:
    """Tunable rates; times in seconds."""

    mean_talk: float = 45.0
    min_talk: float = 5.0
    mean_patience: float = 40.0
    min_patience: float = 3.0
    caller_hangs_up: float = 0.3  # share of answered calls the caller ends
    noanswer: float = 0.04  # chance an agent lets a ring time out
    mean_between_breaks: float = 480.0
    break_length: tuple[float, float] = (20.0, 150.0)
    mean_between_logouts: float = 3600.0
    logout_length: tuple[float, float] = (60.0, 300.0)
    start_on_break: float = 0.25  # share of agents that begin paused
    login_spacing: float = 0.7
    initial_callers: int = 2  # per queue, arriving in the first seconds


class Traffic:
    def __init__(
        self,
        model: PBXModel,
        *,
        agents: int = 8,
        calls_per_minute: float | Mapping[str, float] = 4.0,
        rng: random.Random | None = None,
        behaviour: Behaviour | None = None,
        first_agent: int = 1001,
        pause_reasons: Sequence[str] = PAUSE_REASONS,
    ) -> None:
        self.model = model
        self.rng = rng or random.Random(model.rng.random())
        self.b = behaviour or Behaviour()
        queues = list(model.queues)
        if isinstance(calls_per_minute, Mapping):
            self.rates = {q: float(calls_per_minute.get(q, 0.0)) for q in queues}
        else:
            self.rates = {q: float(calls_per_minute) for q in queues}
        self.agent_ids = [str(first_agent + i) for i in range(agents)]
        self.names = {a: agent_name(i) for i, a in enumerate(self.agent_ids)}
        # As keyed in on a phone: lower case now and then, and sometimes no reason.
        reasons = list(pause_reasons) or [""]
        self.pause_reasons = (*reasons, *(r.lower() for r in reasons[:1]), "")
        # Every agent serves the first queue; agent i also serves queue i % n.
        for i, agent_id in enumerate(self.agent_ids):
            names = [queues[0]]
            if len(queues) > 1 and i % len(queues):
                names.append(queues[i % len(queues)])
            model.agent_queues[agent_id] = names
        self._timers: set[IDelayedCall] = set()
        # Bumped at each login: breaks and logouts planned before a logout are void.
        self._shift: dict[str, int] = {}
        self.running = False

    def _later(self, delay: float, fn, *args) -> None:
        call: IDelayedCall

        def run() -> None:
            self._timers.discard(call)
            if self.running:
                fn(*args)

        call = self.model.clock.callLater(delay, run)
        self._timers.add(call)

    def start(self) -> None:
        self.running = True
        rng = self.rng
        for i, agent_id in enumerate(self.agent_ids):
            self.model.agent(agent_id).noanswer_prob = self.b.noanswer
            t = i * self.b.login_spacing + rng.uniform(0, 0.3)
            self._later(t, self._login, agent_id, rng.random() < self.b.start_on_break)
        for queue, rate in self.rates.items():
            if rate > 0:
                for _ in range(self.b.initial_callers):
                    self._later(rng.uniform(1.0, 6.0), self._caller, queue)
                self._later(rng.expovariate(rate / 60.0), self._arrival, queue)

    def stop(self) -> None:
        self.running = False
        for call in list(self._timers):
            if call.active():
                call.cancel()
        self._timers.clear()

    # -- callers ---------------------------------------------------------

    def _arrival(self, queue: str) -> None:
        self._caller(queue)
        self._later(self.rng.expovariate(self.rates[queue] / 60.0), self._arrival, queue)

    def _caller(self, queue: str) -> None:
        rng, b = self.rng, self.b
        cid = f"{rng.randint(20000000, 99999999)}"
        patience = max(b.min_patience, rng.expovariate(1 / b.mean_patience))
        talk = max(b.min_talk, rng.expovariate(1 / b.mean_talk))
        side = "caller" if rng.random() < b.caller_hangs_up else "agent"
        # Two callers in three have a name (CallerIDName); the others none, as
        # from a number that withholds it.  From the number: no extra draw.
        name = "" if int(cid) % 3 == 0 else SURNAMES[int(cid) // 7 % len(SURNAMES)]
        self.model.add_caller(queue, cid, patience=round(patience, 3), talk=round(talk, 3),
                              end_side=side, cid_name=name)

    # -- agents ----------------------------------------------------------

    def _login(self, agent_id: str, on_break: bool) -> None:
        shift = self._shift[agent_id] = self._shift.get(agent_id, 0) + 1
        self.model.originate("Local/011@public", callerid=self._callerid(agent_id),
                             application="Wait", data="1")
        # The login pauses the member; the agent makes itself available (or not yet).
        wait = DIALPLAN_DELAY + self.rng.uniform(0.5, 2.0)
        if on_break:
            self._later(wait, self._pause, agent_id, shift, self.rng.choice(self.pause_reasons[:2]),
                        self.rng.uniform(25.0, 70.0))
        else:
            self._later(wait, self._unpause, agent_id, shift)
        self._later(self.rng.expovariate(1 / self.b.mean_between_logouts), self._logout,
                    agent_id, shift)

    def _callerid(self, agent_id: str) -> str:
        """The phone's caller id, as the Ansible phone list sets it: "Name" <id>."""
        return f'"{self.names.get(agent_id, "Agent " + agent_id)}" <{agent_id}>'

    def _on_shift(self, agent_id: str, shift: int) -> bool:
        agent = self.model.agents.get(agent_id)
        return self._shift.get(agent_id) == shift and agent is not None and bool(agent.members)

    def _unpause(self, agent_id: str, shift: int) -> None:
        if not self._on_shift(agent_id, shift):
            return
        self.model.queue_pause(self.model.agents[agent_id].interface, None, False, "")
        self._later(self.rng.expovariate(1 / self.b.mean_between_breaks), self._take_break,
                    agent_id, shift)

    def _pause(self, agent_id: str, shift: int, reason: str, length: float) -> None:
        if not self._on_shift(agent_id, shift):
            return
        self.model.queue_pause(self.model.agents[agent_id].interface, None, True, reason)
        self._later(length, self._unpause, agent_id, shift)

    def _take_break(self, agent_id: str, shift: int) -> None:
        if not self._on_shift(agent_id, shift):
            return
        reason = self.rng.choice(self.pause_reasons)
        self._pause(agent_id, shift, reason, self.rng.uniform(*self.b.break_length))

    def _logout(self, agent_id: str, shift: int) -> None:
        """End of shift: pause (no new calls), then dial 022 once no call rings or talks."""
        if not self._on_shift(agent_id, shift):
            return
        agent = self.model.agents[agent_id]
        if not all(m.paused for m in agent.members.values()):
            self.model.queue_pause(agent.interface, None, True, "")
        if agent.attempt is not None:
            self._later(5.0, self._logout, agent_id, shift)  # finish the call first
            return
        self._shift[agent_id] += 1  # breaks planned for this shift are void
        self.model.originate("Local/022@public", callerid=self._callerid(agent_id),
                             application="Wait", data="1")
        self._later(self.rng.uniform(*self.b.logout_length), self._login, agent_id, False)

    @property
    def agents(self) -> Sequence[str]:
        return self.agent_ids
