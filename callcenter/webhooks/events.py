"""The webhook events, derived from the core's ``Changes`` (never from AMI headers).

A ``Changes`` says which statuses ended (``transitions``, the report's lines)
and what the changed entities look like now (``objects``).  From them:

- ``call.connected``: a call's QUEUED status ended and it went INCALL;
- ``call.ended``: a queue entry ended — ``answered`` (its INCALL ended: hung
  up or transferred), ``abandoned`` (QUEUED → ABANDON) or ``timeout`` (QUEUED
  → back in the dialplan or into another queue);
- ``agent.status``: an agent's status (or pause reason) differs from the
  last one seen.

This module only reads: it never changes the center's state.  Each event's
``id`` is a hash of what identifies it (type, call or agent, queue, outcome,
event time), so the same event always has the same id, in any process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from callcenter.core.changes import Changes
from callcenter.model import ABANDON, INCALL, LOGGEDOUT, QUEUED

VERSION = 1
CALL_CONNECTED = "call.connected"
CALL_ENDED = "call.ended"
AGENT_STATUS = "agent.status"
EVENT_TYPES = (CALL_CONNECTED, CALL_ENDED, AGENT_STATUS)
SIGNATURE_HEADER = "X-Callcenter-Signature"


@dataclass(frozen=True)
class WebhookEvent:
    """One event, its body encoded once: every hook gets the same bytes."""

    id: str
    type: str
    body: bytes
    private: bool  # carries a caller's number


def sign(body: bytes, secret: bytes) -> str:
    """The ``X-Callcenter-Signature`` value: HMAC-SHA256 over the exact body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def event_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _event(kind: str, ts: float, key: tuple[str, ...], payload: dict[str, Any]) -> WebhookEvent:
    ident = event_id(kind, f"{ts:.6f}", *key)
    doc = {"version": VERSION, "id": ident, "type": kind, "time": round(ts, 3), **payload}
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode()
    return WebhookEvent(ident, kind, body, private="call" in payload)


class _Answered:
    """What a connected call's ``call.ended`` needs that its end no longer shows."""

    __slots__ = ("hold", "agent")

    def __init__(self, hold: int | None, agent: str) -> None:
        self.hold = hold
        self.agent = agent


class EventDeriver:
    """Turns each ``Changes`` into webhook events, in order.

    Remembers the agents' last status and the connected calls' hold and
    agent (bounded by the live agents and calls); ``prime`` sets both from
    the center's state (after a restore), so a restart does not announce
    what was already announced.
    """

    def __init__(self, center: Any) -> None:
        self.center = center
        self._agents: dict[str, tuple[str, str]] = {}
        self._answered: dict[str, _Answered] = {}

    def prime(self) -> None:
        self._agents = {a.agentid: (a.status, a.reason) for a in self.center.agents.values()}
        self._answered = {
            c.id: _Answered(c.hold, c.agent or "")
            for c in self.center.calls.values()
            if c.status == INCALL
        }

    def derive(self, ch: Changes) -> list[WebhookEvent]:
        objects: dict[tuple[str, str], dict[str, Any]] = {}
        for obj in ch.objects:
            ident = obj.get("agentid") if obj.get("type") == "AGENT" else obj.get("id")
            objects[(obj.get("type", ""), str(ident))] = obj
        out: list[WebhookEvent] = []
        out += self._calls(ch, objects)
        out += self._agent_events(ch, objects)
        return out

    # ------------------------------------------------------------ calls

    def _calls(self, ch: Changes, objects: dict[tuple[str, str], dict[str, Any]]) -> list[WebhookEvent]:
        ended: dict[str, list[Any]] = {}
        for t in ch.transitions:
            if t.kind == "CALL" and t.uniqueid:
                ended.setdefault(t.uniqueid, []).append(t)
        out: list[WebhookEvent] = []
        for uid, steps in ended.items():
            call = objects.get(("CALL", uid), {})
            conn = objects.get(("CONNECT", uid), {})
            for i, t in enumerate(steps):
                after = steps[i + 1].status if i + 1 < len(steps) else call.get("status", "")
                if not after:
                    continue  # no CALL object says where the call went: no guess
                who = {"id": uid, "callerid": t.ident, "queue": t.queue}
                if call.get("callername"):
                    who["callername"] = call["callername"]
                if t.status == QUEUED and after == INCALL:
                    agent = _agent_of(conn) or self._live_agent(uid)
                    self._answered[uid] = _Answered(t.duration, agent)
                    out.append(_event(CALL_CONNECTED, ch.ts, (uid, t.queue), {
                        "call": {**who, "agent": agent, "hold_seconds": t.duration},
                    }))
                elif t.status == QUEUED:
                    outcome = "abandoned" if after == ABANDON else "timeout"
                    out.append(_event(CALL_ENDED, ch.ts, (uid, t.queue, outcome), {
                        "call": {**who, "outcome": outcome, "agent": "", "hold_seconds": t.duration,
                                 "talk_seconds": 0, "transferred": False},
                    }))
                elif t.status == INCALL:
                    seen = self._answered.pop(uid, None)
                    agent = (seen.agent if seen else "") or _agent_of(conn)
                    hold = seen.hold if seen is not None else None
                    # An ended Uniqueid may enter a queue again only after a transfer.
                    transferred = after == QUEUED or (
                        uid not in self.center.calls and self.center.callbook.may_enter(uid)
                    )
                    out.append(_event(CALL_ENDED, ch.ts, (uid, t.queue, "answered"), {
                        "call": {**who, "outcome": "answered", "agent": agent, "hold_seconds": hold,
                                 "talk_seconds": t.duration, "transferred": transferred},
                    }))
        return out

    def _live_agent(self, uid: str) -> str:
        conn = self.center.connections.get(uid)
        return conn.agentid if conn is not None else ""

    # ------------------------------------------------------------ agents

    def _agent_events(
        self, ch: Changes, objects: dict[tuple[str, str], dict[str, Any]]
    ) -> list[WebhookEvent]:
        out: list[WebhookEvent] = []
        for (kind, agentid), obj in objects.items():
            if kind != "AGENT":
                continue
            status = str(obj.get("status", ""))
            reason = str(obj.get("reason", "")) if status == "PAUSED" else ""
            before = self._agents.get(agentid, (LOGGEDOUT, ""))
            if status == LOGGEDOUT:
                self._agents.pop(agentid, None)
            else:
                self._agents[agentid] = (status, reason)
            if (status, reason) == before:
                continue
            agent: dict[str, Any] = {
                "id": agentid,
                "status": status,
                "previous_status": before[0],
                "reason": reason,
                "queues": list(obj.get("queues", [])),
            }
            if obj.get("name"):
                agent["name"] = obj["name"]
            out.append(_event(AGENT_STATUS, ch.ts, (agentid, status, reason), {"agent": agent}))
        return out


def _agent_of(conn: dict[str, Any]) -> str:
    agent = conn.get("agent")
    return str(agent.get("agentid", "")) if isinstance(agent, dict) else ""


__all__ = [
    "AGENT_STATUS",
    "CALL_CONNECTED",
    "CALL_ENDED",
    "EVENT_TYPES",
    "EventDeriver",
    "SIGNATURE_HEADER",
    "VERSION",
    "WebhookEvent",
    "event_id",
    "sign",
]
