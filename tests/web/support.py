"""Test rig for the dashboard: the real Callcenter, fed over a loopback AMI
connection by a fake PBX, served by make_site on a free loopback port, and
Autobahn WebSocket clients to talk to it."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from support.fake_asterisk import SHIPPED_READ, AsteriskManager, AsteriskManagerFactory
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import (
    SSL4ClientEndpoint,
    TCP4ClientEndpoint,
    connectProtocol,
    serverFromString,
)
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import deferLater

from callcenter.ami.message import Message, format_message
from callcenter.ami.protocol import AMIProtocol
from callcenter.center import Callcenter
from callcenter.web import make_site

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATIC_DIR = os.path.join(ROOT, "static")
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
TIMEOUT = 10.0  # seconds before a test gives up waiting (never asserted on)


class HandshakeRefused(Exception):
    pass


class WSClient(WebSocketClientProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.frames: DeferredQueue = DeferredQueue()
        self.opened: Deferred = Deferred()
        self.closed: Deferred = Deferred()
        self.count = 0

    def onOpen(self) -> None:
        self.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.count += 1
        self.frames.put(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.opened.called:
            self.opened.errback(HandshakeRefused(reason))
        if not self.closed.called:
            self.closed.callback((code, reason))

    def send(self, text: str) -> None:
        self.sendMessage(text.encode("utf-8"))

    async def frame(self, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """The next frame, as its list of JSON objects."""
        d = self.frames.get()
        d.addTimeout(timeout, reactor)
        payload = await d
        return [json.loads(line) for line in payload.decode("utf-8").split("\n")]

    async def hello(self) -> list[dict[str, Any]]:
        self.send("HELLO")
        return await self.frame()

    async def until(self, pred: Callable[[list[dict[str, Any]]], bool]) -> list[list[dict[str, Any]]]:
        """Frames up to and including the first one that satisfies ``pred``."""
        frames = []
        while True:
            f = await self.frame()
            frames.append(f)
            if pred(f):
                return frames


def has(kind: str, **match: Any) -> Callable[[list[dict[str, Any]]], bool]:
    def pred(frame: list[dict[str, Any]]) -> bool:
        return find(frame, kind, **match) is not None

    return pred


def find(objects: list[dict[str, Any]], kind: str, **match: Any) -> dict[str, Any] | None:
    for o in objects:
        if o.get("type") == kind and all(o.get(k) == v for k, v in match.items()):
            return o
    return None


# -- the fake PBX --------------------------------------------------------------

@dataclass
class Member:
    name: str
    interface: str
    queues: list[str]
    paused: bool = False
    reason: str = ""


@dataclass
class PeerState:
    """What the fake PBX knows and what it was asked.  ``pbx`` is the tests'
    fake Asterisk (support/fake_asterisk.py) with the shipped manager.conf
    user's read classes, answering QueuePause the way Asterisk 22 does; the
    methods below build app_queue events with the fields seen in
    ../shared/ami-traces (REFERENCE.md)."""

    clock: Any
    members: dict[str, Member] = field(default_factory=dict)  # interface -> member
    # Interface -> Asterisk's Message for a QueuePause it must refuse.
    refuse: dict[str, str] = field(default_factory=dict)
    pbx: AsteriskManagerFactory = field(default_factory=lambda: AsteriskManagerFactory(read=SHIPPED_READ))
    _uids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.pbx.forget_closed = True
        self.pbx.answers["QueuePause"] = self._queue_pause

    @property
    def actions(self) -> list[Message]:
        return self.pbx.actions

    def pauses(self) -> list[dict[str, str]]:
        return [m.as_dict() for m in self.actions if m.get("Action") == "QueuePause"]

    # -- events ------------------------------------------------------------

    def event(self, name: str, **headers: Any) -> bytes:
        pairs = [("Event", name), ("Privilege", "agent,all"), ("Timestamp", f"{self.clock.seconds():.6f}")]
        pairs += [(k, str(v)) for k, v in headers.items()]
        return format_message(pairs)

    def send(self, *blocks: bytes) -> None:
        """Push events to every connected client (one TCP write each)."""
        self.pbx.push(b"".join(blocks))

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

    def _queue_pause(self, conn: AsteriskManager, msg: Message) -> None:
        s = self
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


@dataclass
class Rig:
    center: Any
    peer: PeerState
    site: Any
    port: Any
    ami: Any = None
    peer_port: Any = None
    clients: list[Any] = field(default_factory=list)

    @property
    def portno(self) -> int:
        return self.port.getHost().port

    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.portno}/"

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    async def client(self, origin: str | None = None, headers: dict[str, str] | None = None) -> WSClient:
        """A dashboard connection; by default from our own origin, as the page's."""
        factory = WebSocketClientFactory(
            f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.portno}/callcenter",
            origin=origin or self.origin,
            headers=headers or {},
            reactor=reactor,
        )
        factory.protocol = WSClient
        if self.tls:
            endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", self.portno, CertificateOptions())
        else:
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.portno)
        proto = await endpoint.connect(factory)
        self.clients.append(proto)
        d = proto.opened
        d.addTimeout(TIMEOUT, reactor)
        return await d

    async def feed(self, *events: bytes) -> None:
        """Have the PBX send events; returns once the center has seen them."""
        before = self.ami.messages_received if self.ami else 0
        self.peer.send(*events)
        if self.ami is None:
            return
        want = before + sum(e.count(b"\r\n\r\n") for e in events)
        for _ in range(int(TIMEOUT / 0.005)):
            if self.ami.messages_received >= want:
                return
            await deferLater(reactor, 0.005)
        raise TimeoutError("the AMI client did not get the events")

    async def stop(self) -> None:
        for c in self.clients:
            if c.transport is not None:
                c.transport.abortConnection()
        await self.port.stopListening()
        if self.ami is not None and self.ami.transport is not None:
            self.ami.transport.abortConnection()
        if self.peer_port is not None:
            await self.peer_port.stopListening()
        await deferLater(reactor, 0)


async def listen(site: Any, port: int = 0, tls: tuple[str, str] | None = None) -> Any:
    """Listen on loopback; with ``tls`` (key, cert PEM paths) as ``ssl:`` (HTTPS/WSS)."""
    if tls is None:
        spec = f"tcp:{port}:interface=127.0.0.1"
    else:
        spec = f"ssl:{port}:interface=127.0.0.1:privateKey={tls[0]}:certKey={tls[1]}"
    return await serverFromString(reactor, spec).listen(site)


def self_signed(directory: str) -> tuple[str, str]:
    """A throw-away key and certificate for 127.0.0.1; returns their PEM paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


async def start_rig(center_kw: dict[str, Any] | None = None, **site_kw: Any) -> Rig:
    """Real Callcenter + real AMIProtocol ↔ fake PBX, and the dashboard site."""
    center = Callcenter(reactor, sla=10, **(center_kw or {}))
    peer = PeerState(reactor)
    peer_port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
        peer.pbx
    )
    ami = AMIProtocol(center.handle_event, clock=reactor)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", peer_port.getHost().port), ami)
    await ami.login("callcenter", "secret")
    center.ami = ami
    site_kw.setdefault("static_dir", STATIC_DIR)
    site = make_site(center, reactor=reactor, **site_kw)
    port = await listen(site)
    return Rig(center=center, peer=peer, site=site, port=port, ami=ami, peer_port=peer_port)


class RawHTTP(Protocol):
    """Sends bytes, collects everything until the server closes."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.data = b""
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if b"\r\n\r\n" in self.data:  # the status line and headers are all we need
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(self.data)


async def raw_request(port: int, request: bytes) -> bytes:
    proto = RawHTTP(request)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), proto)
    d = proto.done
    d.addTimeout(TIMEOUT, reactor)
    return await d


def upgrade_request(port: int, origin: str | None, host: str | None = None) -> bytes:
    lines = [
        "GET /callcenter HTTP/1.1",
        f"Host: {host or f'127.0.0.1:{port}'}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
