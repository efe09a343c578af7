"""An independent model of what Asterisk would answer to QueueStatus and
CoreShowChannels at some instant of a recorded trace.

It follows the trace's raw AMI events with app_queue's own bookkeeping, as
REFERENCE.md describes it (gotchas 1, 9, 11, 17, 21), and shares no code with
the service: restart and kill tests take the PBX's truth at the cut from
here, never from a ``Callcenter`` that followed the same events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callcenter.ami.message import Message


@dataclass
class _Member:
    name: str
    location: str
    paused: bool = False
    reason: str = ""
    login: int = 0
    last_pause: int = 0
    in_call: bool = False
    status: str = "1"
    wrapup: int = 0  # the member's own Wrapuptime (0: the queue's applies)
    calls_taken: int = 0  # update_queue(): calls answered and ended
    last_call: int = 0  # update_queue(): time(NULL) when the last one ended


@dataclass
class _Channel:
    uid: str
    name: str
    callerid: str
    created: float
    bridge: str = ""
    queue: str = ""  # in Queue() (waiting or connected through app_queue)
    app: str = ""  # the application of its last Newexten


@dataclass
class _Params:
    """app_queue's per-queue counters (struct call_queue), kept as app_queue does."""

    completed: int = 0  # callscompleted: update_queue(), when an answered call ends
    abandoned: int = 0  # callsabandoned: record_abandoned(), which publishes QueueCallerAbandon
    holdtime: int = 0  # recalc_holdtime() at connect: (3 * old + new) >> 2
    talktime: int = 0  # update_queue(): the same running mean of talk seconds


@dataclass
class PbxState:
    members: dict[tuple[str, str], _Member] = field(default_factory=dict)  # (queue, location)
    entries: dict[str, tuple[str, float]] = field(default_factory=dict)  # uid -> (queue, joined)
    channels: dict[str, _Channel] = field(default_factory=dict)
    params: dict[str, _Params] = field(default_factory=dict)
    now: float = 0.0

    def reset_stats(self, queue: str | None = None) -> None:
        """``queue reset stats [queue]`` (clear_queue)."""
        for name, p in self.params.items():
            if queue is None or name == queue:
                p.completed = p.abandoned = p.holdtime = p.talktime = 0

    def feed(self, events: list[tuple[float, Message]]) -> PbxState:
        for t, msg in events:
            self.now = max(self.now, t)
            self.event(msg, t)
        return self

    def event(self, m: Message, t: float) -> None:
        name = m.event or ""
        ts = float(m.get("Timestamp") or t)
        queue = m.get("Queue") or ""
        iface = m.get("Interface") or ""
        if name == "QueueMemberAdded":
            paused = m.get("Paused") == "1"
            wrapup = m.get("Wrapuptime") or "0"
            self.members[(queue, iface)] = _Member(
                m.get("MemberName") or iface, iface, paused, m.get("PausedReason") or "",
                int(ts), int(ts), wrapup=int(wrapup) if wrapup.isdigit() else 0,
            )
        elif name in ("QueueMemberPause", "QueueMemberPaused"):
            mem = self.members.get((queue, iface))
            if mem is not None:
                mem.paused = m.get("Paused") == "1"
                mem.reason = m.get("PausedReason") or "" if mem.paused else ""
                if mem.paused:
                    mem.last_pause = int(ts)
        elif name == "QueueMemberRemoved":
            self.members.pop((queue, iface), None)
        elif name == "QueueMemberStatus":
            mem = self.members.get((queue, iface))
            if mem is not None:
                mem.status = m.get("Status") or mem.status
        elif name == "QueueCallerJoin":
            self.entries[m["Uniqueid"]] = (queue, ts)
            chan = self.channels.get(m["Uniqueid"])
            if chan is not None:
                chan.queue = queue
        elif name == "QueueCallerAbandon":
            self.params.setdefault(queue, _Params()).abandoned += 1
            self.entries.pop(m.get("Uniqueid") or "", None)
        elif name == "QueueCallerLeave":
            # app_queue takes the entry out (leave_queue) in the same thread
            # that published the abandon; AMI clients see both after the fact.
            self.entries.pop(m.get("Uniqueid") or "", None)
        elif name == "AgentConnect":
            p = self.params.setdefault(queue, _Params())
            hold = int(m.get("HoldTime") or 0)
            first = p.completed + p.abandoned == 0
            p.holdtime = hold if first else ((p.holdtime << 2) - p.holdtime + hold) >> 2
            mem = self.members.get((queue, iface))
            if mem is not None:
                mem.in_call = True
        elif name == "AgentComplete":
            p = self.params.setdefault(queue, _Params())
            talk = int(m.get("TalkTime") or 0)
            p.completed += 1
            p.talktime = talk if p.completed == 1 else ((p.talktime << 2) - p.talktime + talk) >> 2
            mem = self.members.get((queue, iface))
            if mem is not None:
                mem.in_call = False
                mem.calls_taken += 1
                mem.last_call = int(ts)
        elif name == "Newchannel":
            self.channels[m["Uniqueid"]] = _Channel(
                m["Uniqueid"], m.get("Channel") or "", m.get("CallerIDNum") or "", ts
            )
        elif name == "NewCallerid":
            chan = self.channels.get(m.get("Uniqueid") or "")
            if chan is not None:
                chan.callerid = m.get("CallerIDNum") or chan.callerid
        elif name == "Newexten":
            chan = self.channels.get(m.get("Uniqueid") or "")
            if chan is not None:
                chan.app = m.get("Application") or chan.app
        elif name == "Hangup":
            self.channels.pop(m.get("Uniqueid") or "", None)
        elif name == "BridgeEnter":
            chan = self.channels.get(m.get("Uniqueid") or "")
            if chan is not None:
                chan.bridge = m.get("BridgeUniqueid") or ""
        elif name == "BridgeLeave":
            chan = self.channels.get(m.get("Uniqueid") or "")
            if chan is not None:
                chan.bridge = ""

    # ------------------------------------------------------------ answers

    def queue_status(self) -> list[Message]:
        items = []
        queues = {q for q, _ in self.members} | set(self.params)
        queues |= {q for q, _ in self.entries.values()}
        for queue in sorted(queues):
            p = self.params.get(queue, _Params())
            waiting = sum(1 for q, _ in self.entries.values() if q == queue)
            items.append(Message.of(
                ("Event", "QueueParams"), ("Queue", queue), ("Max", "0"),
                ("Strategy", "rrmemory"), ("Calls", str(waiting)),
                ("Holdtime", str(p.holdtime)), ("TalkTime", str(p.talktime)),
                ("Completed", str(p.completed)), ("Abandoned", str(p.abandoned)),
                ("ServiceLevel", "10"),
            ))
        for (queue, _), mem in sorted(self.members.items()):
            items.append(Message.of(
                ("Event", "QueueMember"), ("Queue", queue), ("Name", mem.name),
                ("Location", mem.location), ("StateInterface", mem.location),
                ("Membership", "dynamic"), ("CallsTaken", str(mem.calls_taken)),
                ("LastCall", str(mem.last_call)), ("LastPause", str(mem.last_pause)),
                ("LoginTime", str(mem.login)), ("InCall", "1" if mem.in_call else "0"),
                ("Status", "2" if mem.in_call else mem.status),
                ("Paused", "1" if mem.paused else "0"), ("PausedReason", mem.reason),
                ("Wrapuptime", str(mem.wrapup)),
            ))
        for uid, (queue, joined) in self.entries.items():
            chan = self.channels.get(uid)
            items.append(Message.of(
                ("Event", "QueueEntry"), ("Queue", queue), ("Uniqueid", uid),
                ("Channel", chan.name if chan else ""), ("CallerIDNum", chan.callerid if chan else ""),
                ("Wait", str(int(self.now - joined))),
            ))
        return items

    def core_show_channels(self) -> list[Message]:
        out = []
        for chan in self.channels.values():
            secs = max(0, int(self.now - chan.created))
            app = "Queue" if chan.queue else "AppDial"
            if chan.queue and chan.app and chan.uid not in self.entries and not chan.bridge:
                app = chan.app  # out of its queue: what the dialplan runs now (Playback, ...)
            pairs = [
                ("Event", "CoreShowChannel"), ("Channel", chan.name), ("Uniqueid", chan.uid),
                ("CallerIDNum", chan.callerid),
                ("Application", app),
                ("ApplicationData", chan.queue),
                ("Duration", f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"),
            ]
            if chan.bridge:
                pairs.append(("BridgeId", chan.bridge))
            out.append(Message.of(*pairs))
        return out

    def answers(self) -> tuple[list[Message], list[Message]]:
        return self.queue_status(), self.core_show_channels()
