"""Exact AMI header lists for the model's events and the action responses.

Header names, their order and the odd snapshot details (the agent leg shown
as ``Exten: <id>`` with an unknown connected line in DialBegin, the caller in
the hangup handler's context in CALLERHANGUP, ...) follow the Asterisk 22
captures in ``../shared/ami-traces``.  ``render_event`` returns the event
category (for ``Events:`` masks) and the headers *without* ``Timestamp``: the
server inserts it after ``Privilege`` when ``timestampevents`` is on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from callcenter.simulator.entities import UNKNOWN, Bridge, Chan, Member, Queue
from callcenter.simulator.model import PBXModel

Headers = list[tuple[str, str]]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}

CAUSE_TXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy", 19: "No answer"}

# Every event the simulator can emit (restricting a comparison with a real trace).
MODELED_EVENTS = frozenset({
    "Newchannel", "Newstate", "LocalBridge", "DialBegin", "DialState", "DialEnd",
    "OriginateResponse", "HangupHandlerPush", "HangupHandlerRun", "UserEvent",
    "MusicOnHoldStart", "MusicOnHoldStop", "HangupRequest", "SoftHangupRequest", "Hangup",
    "BridgeCreate", "BridgeEnter", "BridgeLeave", "BridgeDestroy",
    "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon",
    "AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer",
    "QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause", "QueueMemberPaused",
    "QueueMemberStatus", "FullyBooted", "SuccessfulAuth",
})

_SNAP_FIELDS = ("Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
                "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context",
                "Exten", "Priority", "Uniqueid", "Linkedid")
_KEYS = {p: tuple(p + f for f in _SNAP_FIELDS) for p in ("", "Dest", "LocalOne", "LocalTwo")}


def snapshot(ch: Chan, prefix: str = "", exten: str | None = None,
             connected: tuple[str, str] | None = None) -> Headers:
    k = _KEYS[prefix]
    cl_num, cl_name = connected or (ch.cl_num, ch.cl_name)
    return [
        (k[0], ch.name), (k[1], str(ch.state)), (k[2], STATE_DESC.get(ch.state, "Unknown")),
        (k[3], ch.cid_num), (k[4], ch.cid_name), (k[5], cl_num), (k[6], cl_name),
        (k[7], "en"), (k[8], ""), (k[9], ch.context), (k[10], ch.exten if exten is None else exten),
        (k[11], str(ch.priority)), (k[12], ch.uniqueid), (k[13], ch.linkedid),
    ]


def _dest(dest: Chan, dial: bool = False) -> Headers:
    if dial and dest.role == "agent1":
        # app_queue's dial shows the member leg as first created (trace DialBegin).
        return snapshot(dest, "Dest", exten=dest.dial_exten, connected=(UNKNOWN, UNKNOWN))
    return snapshot(dest, "Dest")


def _member_fields(m: Member, paused_header: bool = True) -> Headers:
    return [
        ("Queue", m.queue.name), ("MemberName", m.name), ("Interface", m.interface),
        ("StateInterface", m.interface), ("Membership", "dynamic"), ("Penalty", "0"),
        ("CallsTaken", str(m.calls_taken)), ("LastCall", str(m.last_call)),
        ("LastPause", str(m.last_pause)), ("LoginTime", str(m.login_time)),
        ("InCall", "1" if m.in_call else "0"), ("Status", str(m.status)),
        ("Paused", "1" if m.paused else "0"), ("PausedReason", m.reason),
        ("Ringinuse", "0"), ("Wrapuptime", "0"),
    ]


def _bridge(b: Bridge) -> Headers:
    return [
        ("BridgeUniqueid", b.uniqueid), ("BridgeType", "basic"),
        ("BridgeTechnology", "simple_bridge"), ("BridgeCreator", "<unknown>"),
        ("BridgeName", "<unknown>"), ("BridgeNumChannels", str(len(b.channels))),
        ("BridgeVideoSourceMode", "none"),
    ]


def _head(event: str, privilege: str) -> Headers:
    return [("Event", event), ("Privilege", privilege)]


CALL = "call,all"
AGENT = "agent,all"
DIALPLAN = "dialplan,all"
USER = "user,all"


def _chan_event(event: str, privilege: str) -> Callable[..., Headers]:
    def render(ch: Chan) -> Headers:
        return _head(event, privilege) + snapshot(ch)
    return render


def _local_bridge(one: Chan, two: Chan, context: str, exten: str) -> Headers:
    return (_head("LocalBridge", CALL) + snapshot(one, "LocalOne") + snapshot(two, "LocalTwo")
            + [("Context", context), ("Exten", exten), ("LocalOptimization", "Yes")])


def _dial_begin(ch: Chan | None, dest: Chan, dialstring: str) -> Headers:
    h = _head("DialBegin", CALL)
    if ch is not None:
        h += snapshot(ch)
    return h + _dest(dest, dial=True) + [("DialString", dialstring)]


def _dial_state(ch: Chan, dest: Chan, status: str) -> Headers:
    return _head("DialState", CALL) + snapshot(ch) + _dest(dest) + [("DialStatus", status)]


def _dial_end(ch: Chan | None, dest: Chan, status: str) -> Headers:
    h = _head("DialEnd", CALL)
    if ch is not None:
        h += snapshot(ch)
    return h + _dest(dest) + [("DialStatus", status)]


def _originate_response(action_id: str | None, response: str, channel: str, app: str,
                        data: str, reason: int, uniqueid: str, cid_num: str,
                        cid_name: str) -> Headers:
    h = _head("OriginateResponse", CALL)
    if action_id:
        h.append(("ActionID", action_id))
    return h + [("Response", response), ("Channel", channel), ("Application", app),
                ("Data", data), ("Reason", str(reason)), ("Uniqueid", uniqueid),
                ("CallerIDNum", cid_num), ("CallerIDName", cid_name)]


def _handler(event: str) -> Callable[[Chan], Headers]:
    def render(ch: Chan) -> Headers:
        return _head(event, DIALPLAN) + snapshot(ch) + [("Handler", "hangup-handler,s,1")]
    return render


def _user_event(ch: Chan, name: str, extra: Iterable[tuple[str, str]]) -> Headers:
    return _head("UserEvent", USER) + snapshot(ch) + [("UserEvent", name)] + list(extra)


def _moh_start(ch: Chan) -> Headers:
    return _head("MusicOnHoldStart", CALL) + snapshot(ch) + [("Class", "default")]


def _cause_event(event: str) -> Callable[[Chan, int], Headers]:
    def render(ch: Chan, cause: int) -> Headers:
        return _head(event, CALL) + snapshot(ch) + [("Cause", str(cause))]
    return render


def _hangup(ch: Chan, cause: int) -> Headers:
    return (_head("Hangup", CALL) + snapshot(ch)
            + [("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, "Unknown"))])


def _bridge_event(event: str) -> Callable[..., Headers]:
    def render(bridge: Bridge, ch: Chan | None = None) -> Headers:
        h = _head(event, CALL) + _bridge(bridge)
        if ch is not None:
            h += snapshot(ch)
        return h
    return render


def _caller_join_leave(event: str) -> Callable[[Chan, str, int, int], Headers]:
    def render(ch: Chan, queue: str, position: int, count: int) -> Headers:
        return (_head(event, AGENT) + snapshot(ch)
                + [("Queue", queue), ("Position", str(position)), ("Count", str(count))])
    return render


def _caller_abandon(ch: Chan, queue: str, position: int, original: int, hold: int) -> Headers:
    return (_head("QueueCallerAbandon", AGENT) + snapshot(ch)
            + [("Queue", queue), ("Position", str(position)),
               ("OriginalPosition", str(original)), ("HoldTime", str(hold))])


def _member_ids(m: Member) -> Headers:
    return [("Interface", m.interface), ("MemberName", m.name)]


def _agent_called(ch: Chan, dest: Chan, queue: str, m: Member) -> Headers:
    return _head("AgentCalled", AGENT) + snapshot(ch) + _dest(dest) + [("Queue", queue)] + _member_ids(m)


def _agent_rna(ch: Chan, dest: Chan, queue: str, m: Member, ring_ms: int) -> Headers:
    return (_head("AgentRingNoAnswer", AGENT) + snapshot(ch) + _dest(dest) + [("Queue", queue)]
            + _member_ids(m) + [("RingTime", str(ring_ms))])


def _agent_connect(ch: Chan, dest: Chan, queue: str, m: Member, hold: int, ring: int) -> Headers:
    return (_head("AgentConnect", AGENT) + snapshot(ch) + _dest(dest) + [("Queue", queue)]
            + _member_ids(m) + [("HoldTime", str(hold)), ("RingTime", str(ring))])


def _agent_complete(ch: Chan | None, dest: Chan | None, queue: str, m: Member, hold: int,
                    talk: int, reason: str) -> Headers:
    h = _head("AgentComplete", AGENT)
    if ch is not None:
        h += snapshot(ch)
    if dest is not None:
        h += _dest(dest)
    return h + [("Queue", queue)] + _member_ids(m) + [
        ("HoldTime", str(hold)), ("TalkTime", str(talk)), ("Reason", reason)]


def _member_event(event: str) -> Callable[[Member], Headers]:
    def render(m: Member) -> Headers:
        return _head(event, AGENT) + _member_fields(m)
    return render


RENDERERS: dict[str, Callable[..., Headers]] = {
    "Newchannel": _chan_event("Newchannel", CALL),
    "Newstate": _chan_event("Newstate", CALL),
    "LocalBridge": _local_bridge,
    "DialBegin": _dial_begin,
    "DialState": _dial_state,
    "DialEnd": _dial_end,
    "OriginateResponse": _originate_response,
    "HangupHandlerPush": _handler("HangupHandlerPush"),
    "HangupHandlerRun": _handler("HangupHandlerRun"),
    "UserEvent": _user_event,
    "MusicOnHoldStart": _moh_start,
    "MusicOnHoldStop": _chan_event("MusicOnHoldStop", CALL),
    "HangupRequest": _cause_event("HangupRequest"),
    "SoftHangupRequest": _cause_event("SoftHangupRequest"),
    "Hangup": _hangup,
    "BridgeCreate": _bridge_event("BridgeCreate"),
    "BridgeEnter": _bridge_event("BridgeEnter"),
    "BridgeLeave": _bridge_event("BridgeLeave"),
    "BridgeDestroy": _bridge_event("BridgeDestroy"),
    "QueueCallerJoin": _caller_join_leave("QueueCallerJoin"),
    "QueueCallerLeave": _caller_join_leave("QueueCallerLeave"),
    "QueueCallerAbandon": _caller_abandon,
    "AgentCalled": _agent_called,
    "AgentRingNoAnswer": _agent_rna,
    "AgentConnect": _agent_connect,
    "AgentComplete": _agent_complete,
    "QueueMemberAdded": _member_event("QueueMemberAdded"),
    "QueueMemberRemoved": _member_event("QueueMemberRemoved"),
    "QueueMemberPause": _member_event("QueueMemberPause"),
    "QueueMemberStatus": _member_event("QueueMemberStatus"),
}


def render_event(kind: str, args: tuple, legacy_pause_name: bool = False) -> tuple[str, Headers]:
    """(category, headers) of one model event; category is the first word of Privilege."""
    headers = RENDERERS[kind](*args)
    if legacy_pause_name and kind == "QueueMemberPause":
        # Asterisk 11/12 called it QueueMemberPaused.
        headers[0] = ("Event", "QueueMemberPaused")
    privilege = headers[1][1]
    return privilege.split(",", 1)[0], headers


# -- session events --------------------------------------------------------

def fully_booted(uptime: int, last_reload: int) -> Headers:
    return [("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", str(uptime)),
            ("LastReload", str(last_reload)), ("Status", "Fully Booted")]


def _event_tv(t: float) -> str:
    ms = int((t - int(t)) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}+0000"


def successful_auth(now: float, session_start: float, username: str, session_id: str,
                    local: str, remote: str) -> Headers:
    return [("Event", "SuccessfulAuth"), ("Privilege", "security,all"),
            ("EventTV", _event_tv(now)), ("Severity", "Informational"), ("Service", "AMI"),
            ("EventVersion", "1"), ("AccountID", username), ("SessionID", session_id),
            ("LocalAddress", local), ("RemoteAddress", remote), ("UsingPassword", "0"),
            ("SessionTV", _event_tv(session_start))]


# -- list responses (no Privilege; ActionID placement as Asterisk's) ----------

def _aid(action_id: str | None) -> Headers:
    return [("ActionID", action_id)] if action_id else []


def list_ack(action_id: str | None, message: str) -> Headers:
    return [("Response", "Success")] + _aid(action_id) + [("EventList", "start"),
                                                          ("Message", message)]


def list_complete(event: str, action_id: str | None, items: int) -> Headers:
    return [("Event", event)] + _aid(action_id) + [("EventList", "Complete"),
                                                   ("ListItems", str(items))]


def _perf(num: int, den: int) -> str:
    return f"{100.0 * num / den:.1f}" if den else "0.0"


def queue_params(q: Queue, action_id: str | None) -> Headers:
    s = q.stats
    c = q.config
    return [("Event", "QueueParams"), ("Queue", q.name), ("Max", str(c.maxlen)),
            ("Strategy", c.strategy), ("Calls", str(len(q.entries))),
            ("Holdtime", str(s.holdtime)), ("TalkTime", str(s.talktime)),
            ("Completed", str(s.completed)), ("Abandoned", str(s.abandoned)),
            ("ServiceLevel", str(c.servicelevel)),
            ("ServicelevelPerf", _perf(s.completed_in_sl, s.completed)),
            ("ServicelevelPerf2", _perf(s.abandoned_in_sl + s.completed_in_sl,
                                        s.abandoned + s.completed)),
            ("Weight", str(c.weight))] + _aid(action_id)


def queue_member(m: Member, action_id: str | None) -> Headers:
    return [("Event", "QueueMember"), ("Queue", m.queue.name), ("Name", m.name),
            ("Location", m.interface), ("StateInterface", m.interface),
            ("Membership", "dynamic"), ("Penalty", "0"), ("CallsTaken", str(m.calls_taken)),
            ("LastCall", str(m.last_call)), ("LastPause", str(m.last_pause)),
            ("LoginTime", str(m.login_time)), ("InCall", "1" if m.in_call else "0"),
            ("Status", str(m.status)), ("Paused", "1" if m.paused else "0"),
            ("PausedReason", m.reason), ("Wrapuptime", "0")] + _aid(action_id)


def queue_entry(q: Queue, position: int, now: float, action_id: str | None) -> Headers:
    caller = q.entries[position - 1]
    ch = caller.ch2
    return [("Event", "QueueEntry"), ("Queue", q.name), ("Position", str(position)),
            ("Channel", ch.name), ("Uniqueid", ch.uniqueid), ("CallerIDNum", ch.cid_num),
            ("CallerIDName", ch.cid_name), ("ConnectedLineNum", ch.cl_num),
            ("ConnectedLineName", ch.cl_name),
            ("Wait", str(int(now) - int(caller.join_time))), ("Priority", "0")] + _aid(action_id)


def queue_summary(q: Queue, now: float, action_id: str | None) -> Headers:
    members = list(q.members.values())
    available = sum(1 for m in members if not m.paused and m.status == 1)
    longest = max((int(now) - int(c.join_time) for c in q.entries), default=0)
    return [("Event", "QueueSummary"), ("Queue", q.name), ("LoggedIn", str(len(members))),
            ("Available", str(available)), ("Callers", str(len(q.entries))),
            ("HoldTime", str(q.stats.holdtime)), ("TalkTime", str(q.stats.talktime)),
            ("LongestHoldTime", str(longest))] + _aid(action_id)


def core_show_channel(ch: Chan, now: float, action_id: str | None) -> Headers:
    d = max(0, int(now - ch.created))
    return ([("Event", "CoreShowChannel")] + _aid(action_id) + snapshot(ch)
            + [("Application", ch.appl), ("ApplicationData", ch.data),
               ("Duration", f"{d // 3600:02d}:{d % 3600 // 60:02d}:{d % 60:02d}"),
               ("BridgeId", ch.bridge.uniqueid if ch.bridge else "")])


def queue_status_items(model: PBXModel, queue: str, member: str,
                       action_id: str | None) -> list[Headers]:
    """QueueStatus: per queue, QueueParams, its QueueMember items, its QueueEntry items."""
    now = model.now()
    items: list[Headers] = []
    for q in model.queues.values():
        if queue and q.name.lower() != queue.lower():
            continue
        items.append(queue_params(q, action_id))
        for m in q.members.values():
            if not member or member in (m.interface, m.name):
                items.append(queue_member(m, action_id))
        for pos in range(1, len(q.entries) + 1):
            items.append(queue_entry(q, pos, now, action_id))
    return items
