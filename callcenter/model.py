"""The call center's entities: agents, calls, and agent-caller connections.

Plain records owned by ``Callcenter``; they know how to render themselves as
the dashboard objects of DESIGN.md and as flat records for Redis.  Times are
float Unix seconds (sub-second precision from AMI ``Timestamp`` headers); the
dashboard gets whole seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

# Agent statuses
LOGGEDIN = "LOGGEDIN"  # logged in, still paused by the login itself: not yet made available
AVAIL = "AVAIL"
PAUSED = "PAUSED"
INCALL = "INCALL"
LOGGEDOUT = "LOGGEDOUT"
AGENT_STATUSES = (LOGGEDIN, AVAIL, PAUSED, INCALL, LOGGEDOUT)

# Call statuses
NA = "NA"  # in the IVR, not yet queued
QUEUED = "QUEUED"
HANGUP = "HANGUP"  # ended after being answered
ABANDON = "ABANDON"  # ended while waiting
CALL_STATUSES = (NA, QUEUED, INCALL, HANGUP, ABANDON)
CALL_ENDED = frozenset({HANGUP, ABANDON})


# app_queue's member Status (ast_device_state): what the agent's phone is doing.
DEVICE_STATES = {
    "0": "UNKNOWN",
    "1": "NOT_INUSE",
    "2": "INUSE",
    "3": "BUSY",
    "4": "INVALID",
    "5": "UNAVAILABLE",
    "6": "RINGING",
    "7": "RINGINUSE",
    "8": "ONHOLD",
}


@dataclass
class Membership:
    """An agent's membership of one queue, as app_queue sees it."""

    paused: bool = False
    reason: str = ""
    wrapup: int = 0  # the member's own Wrapuptime (0: the queue's applies)


@dataclass
class Agent:
    agentid: str
    interface: str = ""
    status: str = AVAIL
    since: float = 0.0
    reason: str = ""
    # queue name -> membership; an agent may be in several queues.
    queues: dict[str, Membership] = field(default_factory=dict)
    # Paused since login with no reason given: shown as LOGGEDIN.
    fresh_login: bool = False
    call: str | None = None  # caller's call id while connected
    call_queue: str = ""
    calls_taken: int = 0
    talk_time: int = 0
    name: str = ""
    since_queue: str = ""  # the queue(s) when the current status began, for the report
    device: str = ""  # the phone's device state (QueueMember Status), e.g. UNAVAILABLE
    team: str = ""
    ringing: str = ""  # the call id whose ring is on this agent's phone
    wrapup_until: float = 0.0  # end of the wrap-up after its last call (0: none)
    login_time: float = 0.0  # the member's LoginTime (earliest of its queues)
    last_call: float = 0.0  # when its last call ended (Asterisk's LastCall)
    # Today's seconds in PAUSED by reason ("" = none given), counted when a pause ends
    # (counting.count_pause); the agent page shows them.
    pause_time: dict[str, int] = field(default_factory=dict)

    @property
    def queue(self) -> str:
        if self.call_queue:
            return self.call_queue
        return ",".join(sorted(self.queues))

    def derived_status(self) -> str:
        if not self.queues:
            return LOGGEDOUT
        if self.call is not None:
            return INCALL
        if self.queues and all(m.paused for m in self.queues.values()):
            # A pause with a reason is a real pause, even straight after login.
            return LOGGEDIN if self.fresh_login and not self.pause_reason() else PAUSED
        return AVAIL

    @property
    def paused(self) -> bool:
        """Paused in every queue: PAUSED, or a pause pending while INCALL."""
        queues = self.queues
        return bool(queues) and all(m.paused for m in queues.values())

    def pause_reason(self) -> str:
        for name in sorted(self.queues):
            m = self.queues[name]
            if m.paused and m.reason:
                return m.reason
        return ""

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "AGENT",
            "agentid": self.agentid,
            "status": self.status,
            "queue": self.queue,
            "time": int(self.since),
            "interface": self.interface,
            "queues": sorted(self.queues),
            "calls_taken": self.calls_taken,
            "talk_time": self.talk_time,
            "name": self.name,
            "team": self.team,
            "ringing": self.ringing,
            "wrapup_until": int(self.wrapup_until),
            "login_time": int(self.login_time),
            "last_call": int(self.last_call),
        }
        if self.pause_time:
            d["pause_time"] = dict(self.pause_time)
        status = self.status
        # Cheap on the hot path: only INCALL needs to look at the memberships.
        paused = status in (PAUSED, LOGGEDIN) or (status == INCALL and self.paused)
        d["paused"] = paused
        if status == PAUSED:
            d["reason"] = self.reason
        elif paused:
            d["reason"] = self.pause_reason()  # e.g. a pause pending while INCALL
        if self.device:
            d["device"] = self.device
        return d

    def to_record(self) -> dict[str, Any]:
        # Built by hand: dataclasses.asdict deep-copies and costs ~4x per event.
        d = dict(self.__dict__)
        d["queues"] = {
            q: {"paused": m.paused, "reason": m.reason, "wrapup": m.wrapup}
            for q, m in self.queues.items()
        }
        d["pause_time"] = dict(self.pause_time)
        return d

    @classmethod
    def from_record(cls, d: dict[str, Any], own: bool = False) -> Agent:
        """``own``: ``d`` is handed over (a record just decoded): it may become
        the instance's own dict instead of a copy."""
        kw = _known(cls, d, own)
        kw["queues"] = {
            str(q): Membership(
                bool(m.get("paused")), str(m.get("reason", "")), _whole(m.get("wrapup", 0), "wrapup")
            )
            for q, m in dict(kw.get("queues") or {}).items()
        }
        agent = _build(cls, kw)
        _check_types(agent, _AGENT_STR_FIELDS)
        agent.wrapup_until = _time(agent.wrapup_until, "wrapup_until")
        agent.login_time = _time(agent.login_time, "login_time")
        agent.last_call = _time(agent.last_call, "last_call")
        if agent.status not in AGENT_STATUSES:
            raise ValueError(f"unknown agent status {agent.status!r}")
        agent.since = float(agent.since)
        return agent


_AGENT_STR_FIELDS = ("agentid", "interface", "status", "reason", "call_queue", "name", "team",
                     "ringing")


@dataclass
class Call:
    id: str  # the caller channel's Uniqueid (never parsed as a number)
    callerid: str = ""
    status: str = NA
    since: float = 0.0
    queue: str = ""
    channel: str = ""
    entered: float | None = None  # joined the queue
    answered: float | None = None  # connected to an agent
    agent: str | None = None
    day: str = ""  # business day the call entered the queue: its KPIs count there
    hold: int | None = None  # seconds from queue entry to answer/abandon (Asterisk's HoldTime)
    left: bool = False  # QueueCallerLeave seen; AgentConnect or an end follows
    left_at: float | None = None  # when it left the queue (with ``left``)
    callername: str = ""  # CallerIDName, "" when Asterisk has none
    position: int = 0  # 1-based place among the callers waiting in its queue; 0 when not

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": "CALL",
            "id": self.id,
            "callerid": self.callerid,
            "status": self.status,
            "queue": self.queue,
            "time": int(self.since),
            "answered": int(self.answered) if self.answered else 0,
            "callername": self.callername,
            "position": self.position,
        }
        if self.hold is not None:  # how long the caller waited (agent page, screen pop)
            d["hold"] = self.hold
        return d

    def to_record(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_record(cls, d: dict[str, Any], own: bool = False) -> Call:
        """``own`` as for ``Agent.from_record``."""
        call = _build(cls, _known(cls, d, own))
        _check_types(call, _CALL_STR_FIELDS)
        call.position = _whole(call.position, "position")
        if call.status not in CALL_STATUSES:
            raise ValueError(f"unknown call status {call.status!r}")
        call.since = float(call.since)
        return call


_CALL_STR_FIELDS = ("id", "callerid", "status", "queue", "channel", "day", "callername")


@dataclass
class Connection:
    """An agent talking to a caller; keyed by the caller's call id."""

    id: str
    agentid: str
    queue: str
    since: float

    def to_json(
        self, agent: Agent | None, call: Call | None, status: str = INCALL
    ) -> dict[str, Any]:
        return {
            "type": "CONNECT",
            "id": self.id,
            "queue": self.queue,
            "time": int(self.since),
            "status": status,
            "agent": agent.to_json() if agent else {"type": "AGENT", "agentid": self.agentid},
            "call": call.to_json() if call else {"type": "CALL", "id": self.id},
        }

    def to_record(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> Connection:
        conn = cls(
            id=str(d["id"]),
            agentid=str(d["agentid"]),
            queue=str(d["queue"]),
            since=float(d["since"]),
        )
        return conn


_FIELD_NAMES: dict[type, frozenset[str]] = {}
_FIELD_ORDER: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> frozenset[str]:
    """The record fields of ``cls``, computed once (a restore asks 20,000 times)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        _FIELD_ORDER[cls] = tuple(f.name for f in fields(cls))
        names = _FIELD_NAMES[cls] = frozenset(_FIELD_ORDER[cls])
    return names


def _known(cls: type, d: dict[str, Any], own: bool = False) -> dict[str, Any]:
    """The record's fields of ``cls`` (a record we wrote has no others: no
    filtering), in a new dict unless ``d`` is the caller's to give (``own``)."""
    known = _field_names(cls)
    if known.issuperset(d):
        return d if own else dict(d)
    return {k: v for k, v in d.items() if k in known}


def _build(cls: type, kw: dict[str, Any]) -> Any:
    """``cls(**kw)``.  A record we wrote names every field in field order: its
    values go straight into the instance's dict (0.6 us instead of the
    dataclass ``__init__``'s 2.7, for each of the 20,000 agents and calls of a
    start), keyed by the field names themselves: the decoded record's own key
    strings (a copy per record) are freed, not kept for the agent's life."""
    _field_names(cls)
    order = _FIELD_ORDER[cls]
    if tuple(kw) != order:
        return cls(**kw)  # defaults, another order, or a missing field's TypeError
    obj = cls.__new__(cls)
    obj.__dict__ = dict(zip(order, kw.values(), strict=True))  # same keys, checked above
    return obj


def _check_types(obj: Any, str_fields: tuple[str, ...]) -> None:
    values = obj.__dict__
    for name in str_fields:
        if values[name].__class__ is not str and not isinstance(values[name], str):
            raise ValueError(f"{type(obj).__name__}.{name} must be a string")


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**9:
        raise ValueError(f"{name} must be a whole number, not {value!r:.40}")
    return value


def _time(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e11:
        raise ValueError(f"{name} must be a Unix time or 0, not {value!r:.40}")
    return float(value)
