"""The simulated PBX's objects: channels, bridges, agents, members, queues, callers.

Plain state, read by ``render.py`` at the moment an event is emitted (like
Asterisk's snapshots) and changed only by ``model.PBXModel``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.interfaces import IDelayedCall

# Device states app_queue reports for Local members (gotcha 9): only these two.
NOT_INUSE = 1
INUSE = 2

# Channel states.
DOWN, RING, RINGING, UP = 0, 4, 5, 6

UNKNOWN = "<unknown>"


@dataclass
class QueueConfig:
    """queues.conf of the rig (REFERENCE.md, "The rig")."""

    strategy: str = "rrmemory"
    timeout: float = 15.0  # ring time per member attempt
    retry: float = 2.0  # pause between attempts
    wrapuptime: float = 2.0
    servicelevel: int = 10
    weight: int = 0
    maxlen: int = 0


class Chan:
    """A channel as Asterisk's snapshot shows it."""

    __slots__ = (
        "name", "uniqueid", "linkedid", "state", "cid_num", "cid_name", "cl_num", "cl_name",
        "context", "exten", "priority", "appl", "data", "bridge", "created", "owner", "role",
        "dial_exten",
    )

    def __init__(self, name: str, uniqueid: str, linkedid: str, state: int, context: str,
                 exten: str, created: float, owner: object, role: str) -> None:
        self.name = name
        self.uniqueid = uniqueid
        self.linkedid = linkedid
        self.state = state
        self.cid_num = self.cid_name = self.cl_num = self.cl_name = UNKNOWN
        self.context = context
        self.exten = exten
        self.dial_exten = exten
        self.priority = 1
        self.appl = ""
        self.data = ""
        self.bridge: Bridge | None = None
        self.created = created
        self.owner = owner
        self.role = role

    def set_callerid(self, num: str, name: str, connected: bool = True) -> None:
        self.cid_num, self.cid_name = num or UNKNOWN, name or UNKNOWN
        if connected:
            self.cl_num, self.cl_name = self.cid_num, self.cid_name

    def __repr__(self) -> str:
        return f"Chan({self.name})"


class Bridge:
    __slots__ = ("uniqueid", "channels")

    def __init__(self, uniqueid: str) -> None:
        self.uniqueid = uniqueid
        self.channels: list[Chan] = []


class Agent:
    """One agent: a device (``Local/<id>@agent-connect``) that may be a member
    of several queues.  The device state is shared by all its memberships."""

    def __init__(self, agent_id: str) -> None:
        self.id = agent_id
        self.interface = f"Local/{agent_id}@agent-connect"
        self.status = NOT_INUSE
        self.members: dict[str, Member] = {}  # queue name -> membership
        self.attempt: Attempt | None = None  # ringing or connected call
        self.last_call_end: float | None = None
        self.noanswer_prob = 0.0  # set by the traffic generator


class Member:
    """A queue membership, with app_queue's per-queue counters."""

    __slots__ = ("queue", "agent", "calls_taken", "last_call", "last_pause", "login_time",
                 "paused", "reason", "in_call")

    def __init__(self, queue: Queue, agent: Agent, login_time: int) -> None:
        self.queue = queue
        self.agent = agent
        self.calls_taken = 0
        self.last_call = 0
        self.last_pause = 0
        self.login_time = login_time
        self.paused = False
        self.reason = ""
        self.in_call = False

    @property
    def name(self) -> str:
        return self.agent.id

    @property
    def interface(self) -> str:
        return self.agent.interface

    @property
    def status(self) -> int:
        return self.agent.status


@dataclass
class GroundTruth:
    """What really happened in one queue, for checking a CTI's KPIs.

    Hold and talk sums are exact (float seconds of simulated time);
    ``answered_in_sl`` uses the whole-second HoldTime Asterisk reports in
    AgentConnect (hold <= service level), like its ServicelevelPerf.
    """

    offered: int = 0  # joined the queue
    answered: int = 0  # connected to an agent
    abandoned: int = 0  # hung up while waiting
    completed: int = 0  # answered calls that have ended
    completed_by_caller: int = 0
    hold_answered: float = 0.0
    hold_abandoned: float = 0.0
    talk_completed: float = 0.0
    # The same sums in the whole seconds the events carry (HoldTime, TalkTime):
    # what a CTI that trusts Asterisk's figures must average to, exactly.
    hold_answered_s: int = 0
    hold_abandoned_s: int = 0
    talk_completed_s: int = 0
    answered_in_sl: int = 0
    abandoned_in_sl: int = 0
    ring_no_answer: int = 0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class QueueStats:
    """app_queue's own counters, as QueueStatus/QueueSummary report them."""

    holdtime: int = 0
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0
    completed_in_sl: int = 0
    abandoned_in_sl: int = 0


class Queue:
    def __init__(self, name: str, config: QueueConfig) -> None:
        self.name = name
        self.config = config
        self.members: dict[str, Member] = {}  # lower-cased interface -> member, join order
        self.entries: list[Caller] = []
        self.rrpos = 0
        self.stats = QueueStats()
        self.truth = GroundTruth()

    def record_connect(self, hold: int) -> None:
        # app_queue's recalc_holdtime: exponential average, raw value at first.
        s = self.stats
        if s.completed + s.abandoned == 0:
            s.holdtime = hold
        else:
            s.holdtime = (3 * s.holdtime + hold) >> 2

    def record_complete(self, hold: int, talk: int) -> None:
        s = self.stats
        s.completed += 1
        s.talktime = talk if s.completed == 1 else (3 * s.talktime + talk) >> 2
        if hold <= self.config.servicelevel:
            s.completed_in_sl += 1

    def record_abandon(self, hold: int) -> None:
        s = self.stats
        s.abandoned += 1
        if hold <= self.config.servicelevel:
            s.abandoned_in_sl += 1


@dataclass(eq=False)
class Caller:
    """A caller: the ``Local/...@public-XXXXXXXX`` pair and its way through one queue."""

    queue: Queue
    cid_num: str
    cid_name: str
    talk: float
    userevents: bool = True  # shipped dialplan (UserEvent CALLER + hangup handler)
    # Originated rig callers: the ;1 half runs Wait(patience) for the whole
    # call, so the caller may also hang up while talking.  Simulated callers
    # give up only while waiting, and end a connected call on ``end_side``.
    patience_covers_talk: bool = True
    end_side: str = "agent"
    ch1: Chan | None = None
    ch2: Chan | None = None
    state: str = "setup"  # setup, waiting, ringing, connected, done
    join_time: float = 0.0
    join_pos: int = 0
    attempt: Attempt | None = None
    connect_time: float = 0.0
    hold: int = 0
    timers: dict[str, IDelayedCall] = field(default_factory=dict)


@dataclass(eq=False)
class Attempt:
    """One ring of one member for one caller (the agent's Local pair)."""

    caller: Caller
    member: Member
    a1: Chan
    a2: Chan
    start: float
    answers: bool
    bridge: Bridge | None = None
    timer: IDelayedCall | None = None
