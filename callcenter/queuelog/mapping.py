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
Member verbs apply only to agents we know: the queue log names a new
member by its interface alone, and the reconcile that follows a catch-up
brings in members we lack with their real names.

``key`` gives an entry and an applied event the same identity (verb,
uniqueid or member, queue), so one already applied from AMI is not applied
again.
"""

from __future__ import annotations

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


def entry_key(e: Entry) -> str | None:
    kind = _KIND.get(e.verb)
    if kind is None:
        return None
    if kind == "caller":
        return f"caller|{e.callid}"  # not in a queue yet: whatever the dialplan wrote there
    who = e.callid if kind in _CALL_KINDS else e.agent
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
            return f"add|{e.interface}|{e.queue}"
        return None
    if t is ev.MemberRemoved:
        return f"remove|{e.interface}|{e.queue}"
    return None


def _secs(e: Entry, i: int, what: str) -> int | None:
    return ev.seconds(e.field(i), what)


def to_events(e: Entry, roster: Any) -> tuple[list[ev.Event], bool]:
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
        if verb == "CONNECT":
            hold = _secs(e, 0, "holdtime")
            return [ev.AgentConnected(
                uid, queue, member, "", "", "", hold, _secs(e, 2, "ringtime"), ts
            )], hold is None
        if verb in ("COMPLETEAGENT", "COMPLETECALLER"):
            talk = _secs(e, 1, "calltime")
            return [ev.AgentCompleted(uid, queue, member, "", talk, False, ts)], talk is None
        if verb in _TRANSFERS:
            # holdtime|calltime|origposition are always the last three fields.
            talk = ev.seconds(e.data[-2], "calltime") if len(e.data) >= 3 else None
            return [ev.AgentCompleted(uid, queue, member, "", talk, True, ts)], talk is None
        if verb == "ABANDON":
            hold = _secs(e, 2, "waittime")
            # The caller hung up: the hang-up decides abandon-or-timeout at once.
            return [ev.CallerAbandoned(uid, queue, hold, ts), ev.CallerHungUp(uid, ts)], hold is None
        hold = _secs(e, _EXITS[verb], "waittime")
        return [ev.CallerTimedOut(uid, queue, hold, ts)], hold is None
    agent = roster.find(e.agent, e.agent)
    if agent is None:
        return [], False  # a member we do not know: the reconcile brings it in
    if verb in ("PAUSE", "UNPAUSE", "PAUSEALL", "UNPAUSEALL"):
        paused = verb in ("PAUSE", "PAUSEALL")
        reason = ev.reason(e.field(0)) if paused else ""
        queues = [queue] if not verb.endswith("ALL") else sorted(agent.queues)
        return [
            ev.MemberChanged("pause", q, agent.agentid, agent.interface, paused, reason, "", ts)
            for q in queues
        ], False
    if verb == "ADDMEMBER":
        if queue in agent.queues:
            return [], False
        paused = e.field(0) == "PAUSED"
        return [ev.MemberChanged("added", queue, agent.agentid, agent.interface, paused, "", "", ts)], False
    return [ev.MemberRemoved(queue, agent.agentid, agent.interface, ts)], False


__all__ = ["VERBS", "entry_key", "event_key", "to_events"]
