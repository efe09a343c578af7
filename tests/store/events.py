"""Hand-made AMI events, shaped like the traces' (REFERENCE.md), for exact timelines."""

from __future__ import annotations

from callcenter.ami.message import Message


def _ev(name: str, t: float, *pairs: tuple[str, str]) -> tuple[float, Message]:
    return t, Message.of(
        ("Event", name), ("Privilege", "agent,all"), ("Timestamp", f"{t:.6f}"), *pairs
    )


def _member(agent: str) -> tuple[tuple[str, str], ...]:
    return (("MemberName", agent), ("Interface", f"Local/{agent}@agent-connect"))


def _caller(uid: str) -> tuple[tuple[str, str], ...]:
    return (
        ("Channel", f"Local/113@public-{uid};2"),
        ("CallerIDNum", "555" + uid),
        ("Uniqueid", uid),
    )


def member_added(t: float, agent: str, queue: str = "q-callcenter") -> tuple[float, Message]:
    return _ev("QueueMemberAdded", t, ("Queue", queue), *_member(agent), ("Paused", "0"))


def join(t: float, uid: str, queue: str = "q-callcenter") -> tuple[float, Message]:
    return _ev("QueueCallerJoin", t, *_caller(uid), ("Queue", queue), ("Position", "1"))


def hangup_request(t: float, uid: str) -> tuple[float, Message]:
    """The caller's hang-up as app_queue sees it before a real abandon's
    QueueCallerAbandon (REFERENCE.md gotchas 20 and 22); class "call"."""
    return t, Message.of(
        ("Event", "HangupRequest"), ("Privilege", "call,all"), ("Timestamp", f"{t:.6f}"),
        *_caller(uid), ("Cause", "0"),
    )


def abandon(t: float, uid: str, hold: int, queue: str = "q-callcenter") -> tuple[float, Message]:
    return _ev("QueueCallerAbandon", t, *_caller(uid), ("Queue", queue), ("HoldTime", str(hold)))


def connect(
    t: float, uid: str, agent: str, hold: int, queue: str = "q-callcenter"
) -> tuple[float, Message]:
    return _ev(
        "AgentConnect", t, *_caller(uid), ("Queue", queue), *_member(agent), ("HoldTime", str(hold))
    )


def complete(
    t: float, uid: str, agent: str, hold: int, talk: int, queue: str = "q-callcenter"
) -> tuple[float, Message]:
    return _ev(
        "AgentComplete",
        t,
        *_caller(uid),
        ("Queue", queue),
        *_member(agent),
        ("HoldTime", str(hold)),
        ("TalkTime", str(talk)),
        ("Reason", "agent"),
    )
