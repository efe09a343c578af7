"""Caller numbers reach an agent only for the call it takes (issue 16, privacy):
not while its phone rings, not for waiting callers, never for another
agent's call; the screen-pop address (which holds the number) rides along
with the same CONNECT.  Two agents' WebSocket views on one floor."""

from __future__ import annotations

import json

import pytest_twisted
from web.support import find, has

from .support import start_auth_rig, user_line, write_users

TEMPLATE = "https://crm.example/c?phone={callerid}&call={uniqueid}"
ANN_CALLER, BOB_CALLER, WAITING = "0611111111", "0622222222", "0633333333"


def ring(peer, uid: str, callerid: str, agent: str) -> bytes:
    return peer.event("AgentCalled", Channel=f"PJSIP/caller-{uid}", CallerIDNum=callerid, Uniqueid=uid,
                      Queue="q-callcenter", MemberName=agent, Interface=f"Local/{agent}@agent-connect")


@pytest_twisted.ensureDeferred
async def test_an_agent_gets_the_number_of_its_own_call_only(tmp_path, redis_server):
    users = str(tmp_path / "users")
    write_users(users, user_line("ann", "agent", agent="1001"), user_line("bob", "agent", agent="1002"))
    arig = await start_auth_rig(tmp_path, redis_server.url, users, "--screen-pop-url", TEMPLATE)
    try:
        peer, rig = arig.rig.peer, arig.rig
        await rig.feed(peer.login("1001"), peer.login("1002"))
        views = {}
        for name in ("ann", "bob"):
            _, cookie, _ = await arig.login(name)
            views[name] = await arig.client(cookie)
            await views[name].hello()
        a, b, w = peer.new_uid(), peer.new_uid(), peer.new_uid()
        # Rings first: ann must not learn the number before she answers.
        await rig.feed(peer.join(a, ANN_CALLER), ring(peer, a, ANN_CALLER, "1001"),
                       peer.join(b, BOB_CALLER), ring(peer, b, BOB_CALLER, "1002"),
                       peer.join(w, WAITING))
        await rig.feed(peer.pause("1001", reason="Lunch"), peer.pause("1002", reason="Lunch"))
        before = {n: await c.until(has("AGENT", reason="Lunch")) for n, c in views.items()}
        # Answered, then ended: seconds apart on a real PBX (a frame carries each
        # object's latest state only, so both in one read would show the end).
        await rig.feed(peer.pause("1001", paused=False), peer.pause("1002", paused=False),
                       peer.connect(a, ANN_CALLER, "1001"), peer.connect(b, BOB_CALLER, "1002"))
        during = {n: await c.until(has("CONNECT", status="INCALL")) for n, c in views.items()}
        await rig.feed(peer.complete(a, ANN_CALLER, "1001"), peer.complete(b, BOB_CALLER, "1002"))
        await rig.feed(peer.pause("1001", reason="Break"), peer.pause("1002", reason="Break"))
        after = {n: during[n] + await c.until(has("AGENT", reason="Break")) for n, c in views.items()}
    finally:
        await arig.stop()

    def text(frames):
        return json.dumps(frames)

    for name, own, other in (("ann", ANN_CALLER, BOB_CALLER), ("bob", BOB_CALLER, ANN_CALLER)):
        assert own not in text(before[name]) and other not in text(before[name]), name
        assert other not in text(after[name]) and WAITING not in text(after[name]), name
        objects = [o for f in after[name] for o in f]
        carrying = [o["type"] for o in objects if own in json.dumps(o)]
        assert carrying and set(carrying) == {"CONNECT"}, (name, carrying)  # never a CALL of its own
        uid = a if name == "ann" else b
        connect = find(objects, "CONNECT", id=uid, status="INCALL")
        assert connect["screen_pop"] == f"https://crm.example/c?phone={own}&call={uid}"
