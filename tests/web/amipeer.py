"""The Asterisk end of an AMI connection, for tests: accepts any Login (see
support/amipeer.py), answers QueuePause the way Asterisk 22 does and sends
app_queue events with the fields seen in ../shared/ami-traces (REFERENCE.md)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from support.amipeer import AsteriskManager, AsteriskManagerFactory

from callcenter.ami.message import Message, format_message


@dataclass
class Member:
    name: str
    interface: str
    queues: list[str]
    paused: bool = False
    reason: str = ""


@dataclass
class PeerState:
    """What the fake PBX knows and what it was asked."""

    clock: Any
    members: dict[str, Member] = field(default_factory=dict)  # interface -> member
    actions: list[Message] = field(default_factory=list)
    # Interface -> Asterisk's Message for a QueuePause it must refuse.
    refuse: dict[str, str] = field(default_factory=dict)
    connections: list[AsteriskManager] = field(default_factory=list)
    _uids: Any = field(default_factory=lambda: itertools.count(1))

    def pauses(self) -> list[dict[str, str]]:
        return [m.as_dict() for m in self.actions if m.get("Action") == "QueuePause"]

    # -- events ------------------------------------------------------------

    def event(self, name: str, **headers: Any) -> bytes:
        pairs = [("Event", name), ("Privilege", "agent,all"), ("Timestamp", f"{self.clock.seconds():.6f}")]
        pairs += [(k, str(v)) for k, v in headers.items()]
        return format_message(pairs)

    def send(self, *blocks: bytes) -> None:
        """Write events to every connected client in one TCP write."""
        data = b"".join(blocks)
        for conn in self.connections:
            conn.transport.write(data)

    def member_event(self, name: str, m: Member, queue: str, **extra: Any) -> bytes:
        return self.event(
            name,
            Queue=queue,
            MemberName=m.name,
            Interface=m.interface,
            StateInterface=m.interface,
            Membership="dynamic",
            Penalty=0,
            CallsTaken=0,
            LastCall=0,
            LastPause=0,
            LoginTime=int(self.clock.seconds()),
            InCall=0,
            Status=1,
            Paused=int(m.paused),
            PausedReason=m.reason,
            Ringinuse=0,
            Wrapuptime=0,
            **extra,
        )

    def login(self, agentid: str, queue: str = "q-callcenter", paused: bool = False, reason: str = "") -> bytes:
        m = Member(agentid, f"Local/{agentid}@agent-connect", [queue], paused, reason)
        self.members[m.interface] = m
        return self.member_event("QueueMemberAdded", m, queue)

    def pause(self, agentid: str, paused: bool = True, reason: str = "") -> bytes:
        """app_queue's event for a pause made elsewhere (phone feature code...)."""
        m = self.members[f"Local/{agentid}@agent-connect"]
        m.paused, m.reason = paused, reason if paused else ""
        return b"".join(self.member_event("QueueMemberPause", m, q) for q in m.queues)

    def logout(self, agentid: str) -> bytes:
        m = self.members.pop(f"Local/{agentid}@agent-connect")
        return b"".join(self.member_event("QueueMemberRemoved", m, q) for q in m.queues)

    def new_uid(self) -> str:
        return f"{int(self.clock.seconds())}.{next(self._uids)}"

    def join(self, uid: str, callerid: str, queue: str = "q-callcenter") -> bytes:
        return self.event(
            "QueueCallerJoin",
            Channel=f"PJSIP/caller-{uid}",
            CallerIDNum=callerid,
            CallerIDName=callerid,
            Uniqueid=uid,
            Queue=queue,
            Position=1,
            Count=1,
        )

    def _agent_event(self, name: str, uid: str, callerid: str, agentid: str, queue: str, **extra: Any) -> bytes:
        return self.event(
            name,
            Channel=f"PJSIP/caller-{uid}",
            CallerIDNum=callerid,
            Uniqueid=uid,
            Queue=queue,
            MemberName=agentid,
            Interface=f"Local/{agentid}@agent-connect",
            **extra,
        )

    def connect(self, uid: str, callerid: str, agentid: str, queue: str = "q-callcenter", hold: int = 3) -> bytes:
        return self.event(
            "QueueCallerLeave", Channel=f"PJSIP/caller-{uid}", Uniqueid=uid, Queue=queue,
            Position=1, Count=0,
        ) + self._agent_event("AgentConnect", uid, callerid, agentid, queue, HoldTime=hold, RingTime=1)

    def complete(self, uid: str, callerid: str, agentid: str, queue: str = "q-callcenter", talk: int = 20) -> bytes:
        return self._agent_event(
            "AgentComplete", uid, callerid, agentid, queue, HoldTime=3, TalkTime=talk, Reason="caller"
        )

    def abandon(self, uid: str, queue: str = "q-callcenter", hold: int = 5) -> bytes:
        return self.event(
            "QueueCallerAbandon", Uniqueid=uid, Queue=queue, Position=1, OriginalPosition=1,
            HoldTime=hold,
        )


class AMIPeerFactory(AsteriskManagerFactory):
    """Any username/secret logs in, without FullyBooted (AMIProtocol.login does
    not wait for it); QueuePause acts on ``state``."""

    forget_closed = True

    def __init__(self, state: PeerState) -> None:
        super().__init__()
        self.state = state
        self.fully_booted = False
        self.connections = state.connections
        self.actions = state.actions
        self.answers["QueuePause"] = self._queue_pause

    def _queue_pause(self, conn: AsteriskManager, msg: Message) -> None:
        s = self.state
        interface = msg.get("Interface") or ""
        member = s.members.get(interface)
        if interface in s.refuse:
            conn.reply(msg, ("Response", "Error"), ("Message", s.refuse[interface]))
        elif member is None:
            conn.reply(msg, ("Response", "Error"), ("Message", "Interface not found"))
        else:
            # Like app_queue: the answer, then one QueueMemberPause per queue.
            paused = (msg.get("Paused") or "").lower() == "true"
            member.paused = paused
            member.reason = (msg.get("Reason") or "") if paused else ""
            done = "Interface paused successfully" if paused else "Interface unpaused successfully"
            conn.reply(msg, ("Response", "Success"), ("Message", done))
            queues = [msg["Queue"]] if msg.get("Queue") else member.queues
            conn.send(b"".join(s.member_event("QueueMemberPause", member, q) for q in queues))
