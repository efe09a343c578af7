"""Helpers for the simulator tests: real traces, in-memory AMI sessions,
and per-entity event sequences for comparing the simulator with Asterisk."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from callcenter.ami.message import Message, Splitter, format_action, parse_message
from callcenter.simulator import SimulatedPBX
from callcenter.simulator.render import MODELED_EVENTS

TRACES = Path(__file__).resolve().parents[3] / "shared" / "ami-traces"
if not TRACES.is_dir():  # the tree may live elsewhere; the traces sit beside it
    TRACES = Path("/work/shared/ami-traces")


# -- real traces ---------------------------------------------------------------

def read_ami(path: Path) -> list[Message]:
    """Messages of a wire capture (the banner dropped)."""
    return [parse_message(b) for b in Splitter().feed(path.read_bytes())]


def first_time(idx_path: Path) -> float:
    with idx_path.open() as f:
        return float(json.loads(f.readline())["t"])


@dataclass
class DriverStep:
    t: float
    send: bytes
    action: Message
    replies: list[Message] = field(default_factory=list)


def read_driver_log(path: Path) -> list[DriverStep]:
    """The driver's actions with their times, each with the messages it got back."""
    steps: list[DriverStep] = []
    text = path.read_text()
    for chunk in re.split(r"^## ", text, flags=re.M)[1:]:
        head, _, body = chunk.partition("\n")
        t, direction = head.split()
        body = body.strip("\n")
        if direction == "SEND":
            msg = parse_message(body.encode())
            steps.append(DriverStep(float(t), (body.replace("\n", "\r\n") + "\r\n\r\n").encode(),
                                    msg))
        elif steps and ": " in body.split("\n", 1)[0]:
            steps[-1].replies.append(parse_message(body.encode()))
    return steps


# -- in-memory sessions ------------------------------------------------------------

class Session:
    """One AMI client connection to the simulator over a StringTransport."""

    def __init__(self, pbx: SimulatedPBX) -> None:
        self.protocol = pbx.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self._splitter = Splitter()
        self.messages: list[Message] = []

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def action(self, name: str, **headers: str) -> None:
        self.send(format_action(name, headers))

    def read(self) -> list[Message]:
        """Messages received since the last read."""
        data = self.transport.value()
        self.transport.clear()
        new = [parse_message(b) for b in self._splitter.feed(data)]
        self.messages.extend(new)
        return new

    @property
    def banner(self) -> str | None:
        return self._splitter.banner

    @property
    def connected(self) -> bool:
        return not self.transport.disconnecting


def make_pbx(*, start: float = 1_795_665_000.0, timestampevents: bool = True,
             queues: tuple[str, ...] = ("q-callcenter", "q-support"), secret: str = "password",
             **kw: object) -> tuple[SimulatedPBX, Clock]:
    """A quiet simulator (no traffic unless asked) on a Clock set to ``start``,
    set up like the rig of the recordings: the user reads every class, and the
    hangup handler unpauses (the original dialplan, gotcha 4)."""
    clock = Clock()
    clock.advance(start)
    kw.setdefault("agents", 0)
    kw.setdefault("calls_per_minute", 0.0)
    kw.setdefault("auth_fail_delay", 0.0)
    kw.setdefault("read", "all")
    kw.setdefault("hangup_unpauses", True)
    kw.setdefault("login_sends_name", False)  # the rig's login had no name: header
    pbx = SimulatedPBX(clock, username="admin", secret=secret, queues=queues, clock=clock,
                       timestampevents=timestampevents, epoch_offset=0.0,
                       **kw)  # type: ignore[arg-type]
    return pbx, clock


def login(session: Session, action_id: str = "rec-1", secret: str = "password",
          **extra: str) -> Message:
    session.action("Login", ActionID=action_id, Username="admin", Secret=secret, **extra)
    return session.read()[0]


def advance_to(clock: Clock, t: float, step: float = 0.05) -> None:
    while clock.seconds() + step < t:
        clock.advance(step)
    if t > clock.seconds():
        clock.advance(t - clock.seconds())


# -- per-entity sequences ---------------------------------------------------------

# Events whose place relative to the others of the same entity varies between
# runs of a real Asterisk (stasis topics are delivered asynchronously, gotcha 8):
# compared as a multiset, not by position.
FLOATING = {
    "chan": {"AgentComplete", "OriginateResponse"},
    "agent": {"QueueMemberStatus", "AgentComplete"},
    "bridge": set(),
    "session": set(),
}

_SUFFIX = re.compile(r"-[0-9a-f]{8}(?=;[12]$)")


def label(m: Message) -> str:
    """Event name plus the values that must agree (not ids or times)."""
    name = m.name
    if name == "UserEvent":
        return f"UserEvent({m['UserEvent']})"
    if name in ("DialEnd", "DialState"):
        return f"{name}[{m['DialStatus']}]"
    if name == "QueueMemberStatus":
        return f"{name}[S{m['Status']} P{m['Paused']}]"
    if name.startswith("QueueMember"):
        # Status in a QueueMemberPause races with the device state (both seen).
        return f"{name}[P{m['Paused']}]"
    if name in ("Hangup", "HangupRequest", "SoftHangupRequest"):
        return f"{name}[{m['Cause']}]"
    if name == "AgentComplete":
        return f"AgentComplete[{m['Reason']}]"
    if name in ("Newstate",):
        return f"Newstate[{m['ChannelState']}]"
    return name


@dataclass
class Entities:
    seqs: dict[tuple, list[Message]]
    kinds: dict[tuple, str]
    unassigned: list[Message]


def group(messages: list[Message], modeled: frozenset[str] = MODELED_EVENTS) -> Entities:
    """Events per entity: each channel (keyed by its name without the 8-hex
    suffix, its caller-id number and its rank among equal keys), each bridge
    (keyed by the first channel that entered it), each agent (Interface), and
    the session's own events (FullyBooted, SuccessfulAuth)."""
    events = [m for m in messages if m.kind == "Event" and m.name in modeled]
    uid_name: dict[str, str] = {}
    uid_cid: dict[str, str] = {}
    order: list[str] = []
    per_uid: dict[str, list[Message]] = defaultdict(list)
    per_bridge: dict[str, list[Message]] = defaultdict(list)
    bridge_first: dict[str, str] = {}
    per_agent: dict[str, list[Message]] = defaultdict(list)
    session: list[Message] = []
    unassigned: list[Message] = []

    def note(uid: str, name: str | None, cid: str | None) -> None:
        if uid not in uid_name:
            order.append(uid)
            uid_name[uid] = name or "?"
        if name:
            uid_name[uid] = name
        if cid and cid != "<unknown>":
            uid_cid[uid] = cid

    for m in events:
        name = m.name
        placed = False
        if name in ("FullyBooted", "SuccessfulAuth"):
            session.append(m)
            continue
        if name == "LocalBridge":
            uid = m["LocalOneUniqueid"]
            note(uid, m["LocalOneChannel"], m.get("LocalOneCallerIDNum"))
        elif name == "OriginateResponse":
            uid = m["Uniqueid"]
            note(uid, m["Channel"], None)
        elif "Uniqueid" in m:
            uid = m["Uniqueid"]
            note(uid, m.get("Channel"), m.get("CallerIDNum"))
        elif "DestUniqueid" in m:
            uid = m["DestUniqueid"]
            note(uid, m.get("DestChannel"), m.get("DestCallerIDNum"))
        else:
            uid = None
        if uid is not None and not name.startswith("Bridge") or name in ("BridgeEnter",
                                                                           "BridgeLeave"):
            per_uid[uid].append(m)
            placed = True
        if name.startswith("Bridge"):
            bid = m["BridgeUniqueid"]
            if name == "BridgeEnter" and bid not in bridge_first:
                bridge_first[bid] = m["Uniqueid"]
            per_bridge[bid].append(m)
            placed = True
        iface = m.get("Interface") or (m.get("member") if name == "UserEvent" else None)
        if iface:
            per_agent[iface].append(m)
            placed = True
        if not placed:
            unassigned.append(m)

    keys: dict[str, tuple] = {}
    rank: Counter = Counter()
    for uid in order:
        base = (_SUFFIX.sub("", uid_name[uid]), uid_cid.get(uid, "?"))
        keys[uid] = ("chan", *base, rank[base])
        rank[base] += 1
    seqs: dict[tuple, list[Message]] = {}
    kinds: dict[tuple, str] = {}
    for uid, msgs in per_uid.items():
        seqs[keys[uid]] = msgs
        kinds[keys[uid]] = "chan"
    for bid, msgs in per_bridge.items():
        k = ("bridge", keys.get(bridge_first.get(bid, ""), ("?", bid)))
        seqs[k] = msgs
        kinds[k] = "bridge"
    for iface, msgs in per_agent.items():
        seqs[("agent", iface)] = msgs
        kinds[("agent", iface)] = "agent"
    if session:
        seqs[("session",)] = session
        kinds[("session",)] = "session"
    return Entities(seqs, kinds, unassigned)


_CHANNEL_FIELDS = {"Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
                   "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context",
                   "Exten", "Priority", "Uniqueid", "Linkedid"}


def header_names(m: Message) -> tuple[str, ...]:
    return tuple(k for k, _ in m.headers)


def same_shape(real: Message, sim: Message) -> bool:
    """Same header names in the same order.  AgentComplete may lack the agent's
    Dest* fields or every channel field in Asterisk (gotchas 5 and 19)."""
    a, b = header_names(real), header_names(sim)
    if a == b:
        return True
    if real.name == "AgentComplete":
        no_dest = tuple(k for k in b if not k.startswith("Dest"))
        bare = tuple(k for k in no_dest if k not in _CHANNEL_FIELDS)
        return a in (no_dest, bare)
    return False


def compare(real: Entities, sim: Entities) -> list[str]:
    """Differences between two traces' per-entity sequences (empty: they agree)."""
    problems: list[str] = []
    for key in sorted(set(real.seqs) | set(sim.seqs), key=repr):
        if key not in sim.seqs:
            problems.append(f"{key}: only in the real trace: "
                            f"{[label(m) for m in real.seqs[key]]}")
            continue
        if key not in real.seqs:
            problems.append(f"{key}: only in the simulator: {[label(m) for m in sim.seqs[key]]}")
            continue
        floating = FLOATING[real.kinds[key]]
        r_fixed = [m for m in real.seqs[key] if m.name not in floating]
        s_fixed = [m for m in sim.seqs[key] if m.name not in floating]
        if [label(m) for m in r_fixed] != [label(m) for m in s_fixed]:
            problems.append(f"{key}: order differs\n  real: {[label(m) for m in r_fixed]}\n"
                            f"  sim:  {[label(m) for m in s_fixed]}")
            continue
        r_float = sorted((m for m in real.seqs[key] if m.name in floating), key=label)
        s_float = sorted((m for m in sim.seqs[key] if m.name in floating), key=label)
        if [label(m) for m in r_float] != [label(m) for m in s_float]:
            problems.append(f"{key}: floating events differ: {[label(m) for m in r_float]} "
                            f"vs {[label(m) for m in s_float]}")
            continue
        for r, s in zip(r_fixed + r_float, s_fixed + s_float, strict=True):
            if not same_shape(r, s):
                problems.append(f"{key}: {label(r)} headers differ\n  real: {header_names(r)}\n"
                                f"  sim:  {header_names(s)}")
    for m in sim.unassigned:
        problems.append(f"simulator event without an entity: {m.headers}")
    return problems
