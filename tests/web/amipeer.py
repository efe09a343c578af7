"""The Asterisk end of an AMI connection, for tests: answers Login and QueuePause
the way Asterisk 22 does and sends app_queue events with the fields seen in
../shared/ami-traces (REFERENCE.md)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.protocol import Factory, Protocol

from callcenter.ami.message import Message, Splitter, format_message, parse_message

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


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
    connections: list[AMIPeer] = field(default_factory=list)
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

    def connect(self, uid: str, callerid: str, agentid: str, queue: str = "q-callcenter", hold: int = 3) -> bytes:
        interface = f"Local/{agentid}@agent-connect"
        return self.event(
            "QueueCallerLeave", Channel=f"PJSIP/caller-{uid}", Uniqueid=uid, Queue=queue,
            Position=1, Count=0,
        ) + self.event(
            "AgentConnect",
            Channel=f"PJSIP/caller-{uid}",
            CallerIDNum=callerid,
            Uniqueid=uid,
            Queue=queue,
            MemberName=agentid,
            Interface=interface,
            HoldTime=hold,
            RingTime=1,
        )

    def complete(self, uid: str, callerid: str, agentid: str, queue: str = "q-callcenter", talk: int = 20) -> bytes:
        return self.event(
            "AgentComplete",
            Channel=f"PJSIP/caller-{uid}",
            CallerIDNum=callerid,
            Uniqueid=uid,
            Queue=queue,
            MemberName=agentid,
            Interface=f"Local/{agentid}@agent-connect",
            HoldTime=3,
            TalkTime=talk,
            Reason="caller",
        )

    def abandon(self, uid: str, queue: str = "q-callcenter", hold: int = 5) -> bytes:
        return self.event(
            "QueueCallerAbandon", Uniqueid=uid, Queue=queue, Position=1, OriginalPosition=1,
            HoldTime=hold,
        )


class AMIPeer(Protocol):
    def __init__(self, state: PeerState) -> None:
        self.state = state
        self._splitter = Splitter(expect_banner=False)

    def connectionMade(self) -> None:
        self.state.connections.append(self)
        self.transport.write(BANNER)

    def connectionLost(self, reason: Any = None) -> None:
        if self in self.state.connections:
            self.state.connections.remove(self)

    def dataReceived(self, data: bytes) -> None:
        for block in self._splitter.feed(data):
            self._action(parse_message(block))

    def _respond(self, aid: str | None, ok: bool, message: str) -> None:
        pairs = [("Response", "Success" if ok else "Error")]
        if aid is not None:
            pairs.append(("ActionID", aid))
        pairs.append(("Message", message))
        self.transport.write(format_message(pairs))

    def _action(self, msg: Message) -> None:
        s = self.state
        s.actions.append(msg)
        name = (msg.get("Action") or "").lower()
        aid = msg.get("ActionID")
        if name == "login":
            self._respond(aid, True, "Authentication accepted")
        elif name == "queuepause":
            interface = msg.get("Interface") or ""
            member = s.members.get(interface)
            if interface in s.refuse:
                self._respond(aid, False, s.refuse[interface])
            elif member is None:
                self._respond(aid, False, "Interface not found")
            else:
                # Like app_queue: the answer, then one QueueMemberPause per queue.
                paused = (msg.get("Paused") or "").lower() == "true"
                member.paused = paused
                member.reason = (msg.get("Reason") or "") if paused else ""
                self._respond(aid, True, "Interface paused successfully" if paused else "Interface unpaused successfully")
                queues = [msg["Queue"]] if msg.get("Queue") else member.queues
                self.transport.write(b"".join(
                    s.member_event("QueueMemberPause", member, q) for q in queues
                ))
        else:
            self._respond(aid, False, "Invalid/unknown command")


class AMIPeerFactory(Factory):
    def __init__(self, state: PeerState) -> None:
        self.state = state

    def buildProtocol(self, addr: Any) -> AMIPeer:
        return AMIPeer(self.state)
