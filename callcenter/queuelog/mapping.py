"""Queue-log entries → the same domain events AMI gives (``ami/events.py``).

So a replayed entry goes through the one apply/count path and produces the
ordinary report lines.  Fields per verb are app_queue.c's ``ast_queue_log``
calls (Asterisk 22), checked against the traces' ``.queue_log``:

==================  =========================================  ==========================
verb                data                                       domain events
==================  =========================================  ==========================
CALLER              callerid (the shipped dialplan's line)     CallerAnnounced
ENTERQUEUE          url|callerid|position[|priority]           CallerJoined
CONNECT             holdtime|bridged uniqueid|ringtime         AgentConnected
COMPLETEAGENT/..    holdtime|calltime|origposition             AgentCompleted
BLINDTRANSFER       exten|context|holdtime|calltime|origpos    AgentCompleted (transfer)
TRANSFER            exten|context|holdtime|calltime|origpos    AgentCompleted (transfer)
ATTENDEDTRANSFER    how|…|holdtime|calltime|origposition       AgentCompleted (transfer)
ABANDON             position|origposition|waittime             CallerAbandoned + hang-up
EXITWITHTIMEOUT     position|origposition|waittime             CallerTimedOut
EXITEMPTY           position|origposition|waittime             CallerTimedOut
EXITWITHKEY         key|position|origposition|waittime         CallerTimedOut
PAUSE / UNPAUSE     reason                                     MemberChanged (pause)
PAUSEALL/UNPAUSEALL reason (queue NONE: every queue)           MemberChanged per queue
ADDMEMBER           "PAUSED" or ""                             MemberChanged (added)
REMOVEMEMBER        ""                                         MemberRemoved
==================  =========================================  ==========================

CALLER is not app_queue's: the shipped dialplan writes it with ``QueueLog()``
where it sends ``UserEvent(CALLER)`` (asterisk-config/extensions.conf), so
the log knows when a caller entered the IVR (the report's NA line).

RINGNOANSWER, RINGCANCELED, QUEUESTART, CONFIGRELOAD, INFO, … change nothing
the protocol shows (AMI's AgentCalled/AgentRingNoAnswer are ignored too).
An agent who logged in while we were away is named by the log as Asterisk
is configured: with ``log_membername_as_agent=yes`` (the shipped
queues.conf) ADDMEMBER gives its member name, its agent id, and it joins at
once; without it, ADDMEMBER gives only the interface, which ``Newcomers``
holds until a line names the member (the login's PAUSE, its first CONNECT)
and the interface's resource is that name (``Local/1001@agent-connect``,
``PJSIP/1001``: the shipped dialplan's convention); it then joins at its
ADDMEMBER's time.  An interface never claimed so is left to the reconcile
that follows the catch-up, which brings members we lack in by their real
names.

``entry_key``/``event_key`` give an entry and an applied event the same
identity (verb, uniqueid or agent id, queue), so one already applied from
AMI is not applied again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from callcenter.ami import events as ev
from callcenter.queuelog.entries import Entry

_EXITS = {"EXITWITHTIMEOUT": 2, "EXITEMPTY": 2, "EXITWITHKEY": 3}  # verb -> waittime field
_TRANSFERS = ("BLINDTRANSFER", "TRANSFER", "ATTENDEDTRANSFER")
_KIND = {
    "CALLER": "caller",
    "ENTERQUEUE": "join",
    "CONNECT": "connect",
    "COMPLETEAGENT": "complete",
    "COMPLETECALLER": "complete",
    "BLINDTRANSFER": "complete",
    "TRANSFER": "complete",
    "ATTENDEDTRANSFER": "complete",
    "ABANDON": "exit",
    "EXITWITHTIMEOUT": "exit",
    "EXITEMPTY": "exit",
    "EXITWITHKEY": "exit",
    "PAUSE": "pause",
    "UNPAUSE": "unpause",
    "ADDMEMBER": "add",
    "REMOVEMEMBER": "remove",
}
_CALL_KINDS = frozenset({"caller", "join", "connect", "complete", "exit"})
#: Every verb that means something here (app_queue's, and the dialplan's own).
VERBS = frozenset(_KIND) | {"PAUSEALL", "UNPAUSEALL"}
#: Interfaces held by ``Newcomers`` at most (the oldest is dropped: the
#: reconcile still brings that agent in).
MAX_NEWCOMERS = 1000


def resource(interface: str) -> str:
    """The name part of an interface: ``Local/1001@agent-connect`` and
    ``PJSIP/1001`` give ``1001``."""
    _, _, rest = interface.partition("/")
    return rest.split("@", 1)[0].split("/", 1)[0]


class Newcomers:
    """Members the log named by interface alone when they joined (ADDMEMBER
    without ``log_membername_as_agent``), held until a line names them."""

    def __init__(self, limit: int = MAX_NEWCOMERS) -> None:
        self.limit = limit
        self._held: OrderedDict[tuple[str, str], Entry] = OrderedDict()  # (queue, interface)

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, e: Entry) -> None:
        self._held[(e.queue, e.agent)] = e
        while len(self._held) > self.limit:
            self._held.popitem(last=False)

    def forget(self, queue: str, interface: str) -> None:
        """It left again before anything named it (REMOVEMEMBER)."""
        self._held.pop((queue, interface), None)

    def claim(self, member: str, queue: str | None) -> list[Entry]:
        """The held ADDMEMBERs of ``member`` (in ``queue``, or any when None)."""
        found = [k for k in self._held if resource(k[1]) == member and queue in (None, k[0])]
        return [self._held.pop(k) for k in found]

    def clear(self) -> None:
        self._held.clear()


def entry_key(e: Entry, roster: Any = None) -> str | None:
    kind = _KIND.get(e.verb)
    if kind is None:
        return None
    if kind == "caller":
        return f"caller|{e.callid}"  # not in a queue yet: whatever the dialplan wrote there
    if kind in _CALL_KINDS:
        who = e.callid
    elif "/" in e.agent and roster is not None:
        who = roster.agentid_for("", e.agent)  # an interface: the agent id we know it by
    else:
        who = e.agent
    return f"{kind}|{who}|{e.queue}"


def event_key(e: ev.Event) -> str | None:
    """The same identity for an applied domain event (AMI's or a replayed one)."""
    t = type(e)
    if t is ev.CallerAnnounced:
        return f"caller|{e.uid}"
    if t is ev.CallerJoined:
        return f"join|{e.uid}|{e.queue}"
    if t is ev.AgentConnected:
        return f"connect|{e.uid}|{e.queue}"
    if t is ev.AgentCompleted:
        return f"complete|{e.uid or e.member}|{e.queue}"
    if t is ev.CallerAbandoned or t is ev.CallerTimedOut:
        return f"exit|{e.uid}|{e.queue}"
    if t is ev.MemberChanged:
        if e.kind == "pause":
            return f"{'pause' if e.paused else 'unpause'}|{e.member}|{e.queue}"
        if e.kind == "added":
            return f"add|{e.member or e.interface}|{e.queue}"
        return None
    if t is ev.MemberRemoved:
        return f"remove|{e.member or e.interface}|{e.queue}"
    return None


def _secs(e: Entry, i: int, what: str) -> int | None:
    return ev.seconds(e.field(i), what)


def to_events(e: Entry, roster: Any, newcomers: Newcomers | None = None) -> tuple[list[ev.Event], bool]:
    """The domain events ``e`` means (maybe none), and whether a hold or talk
    time had to be measured from entry times (missing or unusable seconds).

    Raises ``ev.Invalid`` for an entry whose ids are not sane."""
    verb, ts, queue = e.verb, float(e.ts), e.queue
    if verb not in VERBS:
        return [], False
    if _KIND.get(verb) in _CALL_KINDS:
        uid = ev.ident(e.callid, "callid")
        queue = ev.ident(queue, "queue")
        if verb == "CALLER":
            return [ev.CallerAnnounced(
                uid, ev.ident(e.field(0), "callerid", required=False), "", ts
            )], False
        if verb == "ENTERQUEUE":
            pos = e.field(2)
            return [ev.CallerJoined(
                uid, queue, ev.ident(e.field(1), "callerid", required=False), "",
                int(pos) if pos.isdigit() and len(pos) < 6 else None, ts,
            )], False
        member = ev.ident(e.agent, "agent")
        joined = _joined(member, queue, roster, newcomers)
        if verb == "CONNECT":
            hold = _secs(e, 0, "holdtime")
            return joined + [ev.AgentConnected(
                uid, queue, member, "", "", "", hold, _secs(e, 2, "ringtime"), ts
            )], hold is None
        if verb in ("COMPLETEAGENT", "COMPLETECALLER"):
            talk = _secs(e, 1, "calltime")
            return joined + [ev.AgentCompleted(uid, queue, member, "", talk, False, ts)], talk is None
        if verb in _TRANSFERS:
            # holdtime|calltime|origposition are always the last three fields.
            talk = ev.seconds(e.data[-2], "calltime") if len(e.data) >= 3 else None
            return joined + [ev.AgentCompleted(uid, queue, member, "", talk, True, ts)], talk is None
        if verb == "ABANDON":
            hold = _secs(e, 2, "waittime")
            # The caller hung up: the hang-up decides abandon-or-timeout at once.
            return [ev.CallerAbandoned(uid, queue, hold, ts), ev.CallerHungUp(uid, ts)], hold is None
        hold = _secs(e, _EXITS[verb], "waittime")
        return [ev.CallerTimedOut(uid, queue, hold, ts)], hold is None
    return _member_events(e, ts, roster, newcomers), False


def _joined(member: str, queue: str | None, roster: Any, newcomers: Newcomers | None) -> list[ev.Event]:
    """An unknown ``member`` that a held interface-only ADDMEMBER was: it joins
    first, at its own time (see ``Newcomers``)."""
    if newcomers is None or not len(newcomers) or "/" in member or roster.find(member, "") is not None:
        return []
    return [
        ev.MemberChanged("added", a.queue, member, a.agent, a.field(0) == "PAUSED", "", "", float(a.ts))
        for a in newcomers.claim(member, queue)
    ]


def _member_events(e: Entry, ts: float, roster: Any, newcomers: Newcomers | None) -> list[ev.Event]:
    verb, queue = e.verb, e.queue
    agent = roster.find(e.agent, e.agent)
    if agent is not None:
        agentid, interface, queues = agent.agentid, agent.interface, set(agent.queues)
        joined: list[ev.Event] = []
    elif verb == "ADDMEMBER":
        if "/" in e.agent:
            if newcomers is not None:
                newcomers.hold(e)  # who it is comes with a line that names it
            return []
        agentid, interface, queues, joined = e.agent, "", set(), []  # named by agent id: joins now
    elif verb == "REMOVEMEMBER" and "/" in e.agent:
        if newcomers is not None:
            newcomers.forget(queue, e.agent)
        return []
    else:
        joined = _joined(e.agent, None if verb.endswith("ALL") else queue, roster, newcomers)
        if not joined:
            return []  # a member we do not know: the reconcile brings it in
        agentid, interface = e.agent, joined[0].interface  # type: ignore[union-attr]
        queues = {j.queue for j in joined}
    if verb in ("PAUSE", "UNPAUSE", "PAUSEALL", "UNPAUSEALL"):
        paused = verb in ("PAUSE", "PAUSEALL")
        reason = ev.reason(e.field(0)) if paused else ""
        targets = [queue] if not verb.endswith("ALL") else sorted(queues)
        return joined + [
            ev.MemberChanged("pause", q, agentid, interface, paused, reason, "", ts) for q in targets
        ]
    if verb == "ADDMEMBER":
        if queue in queues:
            return joined
        paused = e.field(0) == "PAUSED"
        return joined + [ev.MemberChanged("added", queue, agentid, interface, paused, "", "", ts)]
    return joined + [ev.MemberRemoved(queue, agentid, interface, ts)]


__all__ = ["MAX_NEWCOMERS", "VERBS", "Newcomers", "entry_key", "event_key", "resource", "to_events"]
