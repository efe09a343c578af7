"""A webhook receiver on loopback, and the events a trace must produce.

The expected events come from the trace alone: calls from its
``expected.json`` (each caller's outcome, agent, hold and talk seconds),
agent statuses from its ``.queue_log`` read with DESIGN.md's status rules
(a login's own pause is LOGGEDIN, a pause given during a call shows once the
call ends).  Nothing here imports the code under test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from support.traces import TRACES
from twisted.internet import reactor
from twisted.web import resource, server

SECRET = b"receiver-test-secret"


@dataclass
class Request:
    body: bytes
    headers: dict[str, str]
    code: int  # what the receiver answered

    @property
    def doc(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver(resource.Resource):
    """Records every POST; answers with ``script`` codes first, then 200."""

    isLeaf = True
    script: list[int] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        resource.Resource.__init__(self)

    def render_POST(self, request: Any) -> bytes:  # noqa: N802 - twisted.web's name
        code = self.script.pop(0) if self.script else 200
        headers = {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        self.requests.append(Request(request.content.read(), headers, code))
        request.setResponseCode(code)
        return b"ok"

    @property
    def delivered(self) -> list[Request]:
        return [r for r in self.requests if 200 <= r.code < 300]

    def listen(self, port: int = 0) -> Any:
        return reactor.listenTCP(port, server.Site(self), interface="127.0.0.1")


def signature_ok(req: Request, secret: bytes = SECRET) -> bool:
    """Independent check of ``X-Callcenter-Signature: sha256=<hex>``."""
    want = "sha256=" + hmac.new(secret, req.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(req.headers.get("x-callcenter-signature", ""), want)


def expected_calls(name: str) -> list[tuple]:
    """(call id, type, outcome, agent, hold, talk) per event, from expected.json."""
    doc = json.loads((TRACES / f"{name}.expected.json").read_text())
    out = []
    for c in doc["callers"]:
        uid = c["uniqueid"]
        if c["outcome"] == "answered":
            out.append((uid, "call.connected", "", c["agent"], c["holdtime_s"], None))
            out.append((uid, "call.ended", "answered", c["agent"], c["holdtime_s"], c["talktime_s"]))
        elif c["outcome"] == "abandoned":
            out.append((uid, "call.ended", "abandoned", "", c["holdtime_s"], 0))
        else:
            raise AssertionError(f"no model for outcome {c['outcome']!r}")
    return out


_LOCAL = re.compile(r"^Local/([^@]+)@")


def expected_agents(name: str) -> list[tuple[str, str, str]]:
    """(agent, status, reason) per status change, in order, from the queue_log."""
    state: dict[str, dict[str, Any]] = {}
    out = []

    def show(agent: str, status: str, reason: str = "") -> None:
        a = state[agent]
        if (a["status"], a["reason"]) != (status, reason):
            a["status"], a["reason"] = status, reason
            out.append((agent, status, reason))

    for line in (TRACES / f"{name}.queue_log").read_text().splitlines():
        f = line.split("|")
        verb, who = f[4], f[3]
        m = _LOCAL.match(who)
        agent = m.group(1) if m else who
        if verb == "ADDMEMBER":
            state[agent] = {"status": "LOGGEDOUT", "reason": "", "paused": False, "fresh": True, "call": False}
            show(agent, "AVAIL")
        elif agent not in state:
            continue
        a = state.get(agent)
        if verb == "PAUSE":
            reason = f[5] if len(f) > 5 else ""
            a["paused"], a["preason"] = True, reason
            if not a["call"]:
                show(agent, "LOGGEDIN" if a["fresh"] and not reason else "PAUSED", "" if a["fresh"] and not reason else reason)
        elif verb == "UNPAUSE":
            a["paused"], a["fresh"] = False, False
            if not a["call"]:
                show(agent, "AVAIL")
        elif verb == "CONNECT":
            a["call"] = True
            show(agent, "INCALL")
        elif verb in ("COMPLETEAGENT", "COMPLETECALLER", "BLINDTRANSFER"):
            a["call"] = False
            show(agent, "PAUSED" if a["paused"] else "AVAIL", a.get("preason", "") if a["paused"] else "")
        elif verb == "REMOVEMEMBER":
            show(agent, "LOGGEDOUT")
            del state[agent]
    return out


def got_calls(reqs: list[Request]) -> list[tuple]:
    out = []
    for r in reqs:
        d = r.doc
        if d["type"].startswith("call."):
            c = d["call"]
            out.append((c["id"], d["type"], c.get("outcome", ""), c["agent"], c["hold_seconds"],
                        c.get("talk_seconds")))
    return out


def got_agents(reqs: list[Request]) -> list[tuple[str, str, str]]:
    return [(r.doc["agent"]["id"], r.doc["agent"]["status"], r.doc["agent"]["reason"])
            for r in reqs if r.doc["type"] == "agent.status"]


def per_key(items: list[tuple]) -> dict[str, list[tuple]]:
    """Items grouped by their first field (call or agent), order kept."""
    out: dict[str, list[tuple]] = {}
    for item in items:
        out.setdefault(item[0], []).append(item)
    return out


def no_duplicate_ids(reqs: list[Request]) -> bool:
    return all(n == 1 for n in Counter(r.doc["id"] for r in reqs).values())
