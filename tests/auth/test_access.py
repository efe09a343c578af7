"""Logins, roles and sessions end to end on loopback with a real Redis:
fake PBX → AMI → Callcenter → access-controlled site → WebSocket clients."""

from __future__ import annotations

import pytest
import pytest_twisted
from web.support import find, has, raw_request, upgrade_request

from callcenter.auth import users as users_mod
from callcenter.web.access import CLOSE_SESSION_ENDED

from .support import PASSWORD, HandshakeRefused, start_auth_rig, user_line, write_users

IFACE = "Local/{}@agent-connect"


def everyone():
    return [
        user_line("root", "admin"),
        user_line("sue", "supervisor"),
        user_line("sam", "supervisor", queues=["q-sales"]),
        user_line("ann", "agent", agent="1001"),
        users_mod.make_user("tv", "wallboard", token=users_mod.token_hash("tv-token-" + "x" * 40)),
    ]


@pytest.fixture
def users_path(tmp_path):
    path = str(tmp_path / "users")
    write_users(path, *everyone())
    return path


@pytest_twisted.async_yield_fixture()
async def arig(tmp_path, redis_server, users_path):
    r = await start_auth_rig(tmp_path, redis_server.url, users_path)
    yield r
    await r.stop()


async def floor(arig):
    """Agents 1001 (q-callcenter), 1002 (q-sales), 1003 (both); a caller in each queue."""
    peer = arig.rig.peer
    sales, support = peer.new_uid(), peer.new_uid()
    await arig.rig.feed(
        peer.login("1001"),
        peer.login("1002", queue="q-sales"),
        peer.login("1003"),
        peer.member_event("QueueMemberAdded", peer.members[IFACE.format("1003")], "q-sales"),
        peer.join(support, "0611111111"),
        peer.join(sales, "0622222222", queue="q-sales"),
    )
    return sales, support


def errors(frames):
    """ERROR messages in a frame, or in the list of frames ``until`` returns."""
    objects = [o for f in frames for o in f] if frames and isinstance(frames[0], list) else frames
    return [o["message"] for o in objects if o["type"] == "ERROR"]


@pytest_twisted.ensureDeferred
async def test_no_session_no_dashboard(arig):
    with pytest.raises(HandshakeRefused):
        await arig.client(None)
    answer = await raw_request(arig.rig.portno, upgrade_request(arig.rig.portno, arig.rig.origin))
    assert answer.startswith(b"HTTP/1.1 401")
    with pytest.raises(HandshakeRefused):
        await arig.client("made-up-session-id")
    code, headers, _ = await arig.request("GET", "")
    assert code == 302 and headers["location"] == "login"
    code, _, _ = await arig.request("GET", "config.json")
    assert code == 401
    code, headers, body = await arig.request("GET", "login")
    assert code == 200 and b"login.js" in body
    assert arig.rig.site.dashboards.clients == []


@pytest_twisted.ensureDeferred
async def test_login_gives_a_strict_cookie_and_the_page(arig):
    code, headers, _ = await arig.request("POST", "login", {"user": "sue", "password": PASSWORD})
    assert code == 200
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    sid = cookie.split(";")[0].split("=", 1)[1]
    code, _, body = await arig.request("GET", "", cookie=sid)
    assert code == 200 and b'<div id="app">' in body
    code, _, body = await arig.request("GET", "config.json", cookie=sid)
    assert code == 200 and b'"role": "supervisor"' in body
    # A login POST from another origin (login CSRF) is refused.
    code, _, _ = await arig.request("POST", "login", {"user": "sue", "password": PASSWORD},
                                    origin="http://evil.example")
    assert code == 403


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_refused_and_throttled(arig, logs):
    limit = arig.parts.access.throttle.user_limit
    for _ in range(limit):
        code, cookie, _ = await arig.login("sue", "wrong")
        assert code == 401 and cookie is None
    # The next try is refused before the password is looked at, even the right one.
    code, cookie, body = await arig.login("sue")
    assert code == 429 and cookie is None and "too many" in body["error"]
    # Another user from the same address is not locked by sue's failures (address limit is higher).
    assert (await arig.login("root"))[0] == 200
    arig.clock.advance(arig.parts.access.throttle.window - 1)
    assert (await arig.login("sue"))[0] == 429
    arig.clock.advance(1)
    code, cookie, _ = await arig.login("sue")
    assert code == 200 and cookie
    assert logs.matching("login failed for 'sue'")


@pytest_twisted.ensureDeferred
async def test_admin_commands_everyone_and_the_audit_file_records_it(arig, tmp_path):
    await floor(arig)
    _, cookie, _ = await arig.login("root")
    c = await arig.client(cookie)
    await c.hello()
    c.send("PAUSE:1002:Lunch")
    await c.until(has("AGENT", agentid="1002", status="PAUSED"))
    c.send("AVAIL:1234")  # unknown agent: Asterisk is not asked, the answer is audited
    assert errors(await c.until(has("ERROR"))) == ["unknown agent 1234"]
    pauses = arig.rig.peer.pauses()
    assert [(p["Interface"], p["Paused"]) for p in pauses] == [(IFACE.format(1002), "true")]
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert len(lines) == 2
    stamp, user, address, action, agent, reason, answer = lines[0].split(";")
    assert (user, address, action, agent, reason, answer) == (
        "root", "127.0.0.1", "PAUSE", "1002", "Lunch", "Success")
    assert len(stamp) == 19
    assert lines[1].split(";")[1:] == ["root", "127.0.0.1", "AVAIL", "1234", "", "Error: unknown agent 1234"]


@pytest_twisted.ensureDeferred
async def test_agent_may_pause_only_itself(arig, tmp_path):
    await floor(arig)
    _, cookie, _ = await arig.login("ann")
    c = await arig.client(cookie)
    frame = await c.hello()
    # Its own agent and the center's figures; nobody else, no caller.
    assert [o["type"] for o in frame] == ["CONFIG", "STATS", "AGENT"]
    assert frame[2]["agentid"] == "1001" and frame[1]["calls_waiting"] == 2
    c.send("PAUSE:1002:Coffee")
    assert errors(await c.frame()) == ["not allowed"]
    c.send("AVAIL:1003")
    assert errors(await c.frame()) == ["not allowed"]
    assert arig.rig.peer.pauses() == []  # nothing reached Asterisk
    c.send("PAUSE:1001:Break")
    await c.until(has("AGENT", agentid="1001", status="PAUSED"))
    assert [p["Interface"] for p in arig.rig.peer.pauses()] == [IFACE.format(1001)]
    audit = [line.split(";")[1:] for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert audit == [
        ["ann", "127.0.0.1", "PAUSE", "1002", "Coffee", "denied: not allowed"],
        ["ann", "127.0.0.1", "AVAIL", "1003", "", "denied: not allowed"],
        ["ann", "127.0.0.1", "PAUSE", "1001", "Break", "Success"],
    ]


@pytest_twisted.ensureDeferred
async def test_wallboard_token_is_read_only_and_revocable(arig, users_path):
    await floor(arig)
    token = "tv-token-" + "x" * 40
    code, headers, body = await arig.request("GET", f"?token={token}")
    assert code == 200 and b'<div id="app">' in body
    cookie = headers["set-cookie"].split(";")[0].split("=", 1)[1]
    c = await arig.client(cookie)
    frame = await c.hello()
    assert {o["type"] for o in frame} >= {"STATS", "AGENT", "CALL"}
    c.send("PAUSE:1001")
    assert errors(await c.frame()) == ["not allowed"]
    c.send("AVAIL:1001")
    assert errors(await c.frame()) == ["not allowed"]
    assert arig.rig.peer.pauses() == []
    assert (await arig.request("GET", "?token=wrong"))[0] == 403

    # Revoked (a new token replaces it): the open wallboard closes, the old token is dead.
    users = users_mod.load(users_path).replace_user("tv", token=users_mod.token_hash(users_mod.new_token()))
    users_mod.save(users_path, users)
    assert arig.parts.source.reload()
    code, _reason = await c.closed
    assert code == CLOSE_SESSION_ENDED
    assert (await arig.request("GET", f"?token={token}"))[0] == 403
    assert (await arig.request("GET", "config.json", cookie=cookie))[0] == 401


@pytest_twisted.ensureDeferred
async def test_scoped_supervisor_sees_and_commands_only_its_queue(arig):
    sales, support = await floor(arig)
    _, cookie, _ = await arig.login("sam")  # q-sales only
    c = await arig.client(cookie)
    _, admin_cookie, _ = await arig.login("sue")
    full = await arig.client(admin_cookie)
    await full.hello()

    frame = await c.hello()
    assert {o["agentid"] for o in frame if o["type"] == "AGENT"} == {"1002", "1003"}
    assert [o["id"] for o in frame if o["type"] == "CALL"] == [sales]
    stats = frame[1]  # after CONFIG
    assert list(stats["queues"]) == ["q-sales"]
    assert stats["calls_waiting"] == 1 and stats["calls_received"] == 1

    # Pushes: a change in q-callcenter only reaches the full view; the scoped one
    # gets nothing from it, then q-sales' change.
    peer = arig.rig.peer
    other, mine = peer.new_uid(), peer.new_uid()
    await arig.rig.feed(peer.join(other, "0633333333"), peer.pause("1001", reason="x"))
    await full.until(has("AGENT", agentid="1001", status="PAUSED"))
    await arig.rig.feed(peer.join(mine, "0644444444", queue="q-sales"))
    seen = await c.until(has("CALL", id=mine))
    assert len(seen) == 1  # q-callcenter's changes sent sam no frame at all
    pushed = seen[0]
    assert [o["type"] for o in pushed] in (["CALL"], ["CALL", "STATS"])
    stats = find(pushed, "STATS")
    if stats is None:  # STATS rides at most twice per --stats-interval: it follows alone
        stats = find([o for f in await c.until(has("STATS")) for o in f], "STATS")
    assert list(stats["queues"]) == ["q-sales"] and stats["calls_received"] == 2
    assert stats["calls_waiting"] == 2

    # An agent leaving its last q-sales membership is gone for sam, without saying where.
    m = peer.members[IFACE.format("1003")]
    await arig.rig.feed(peer.member_event("QueueMemberRemoved", m, "q-sales"))
    seen = await c.until(has("AGENT", agentid="1003"))
    gone = find([o for f in seen for o in f], "AGENT", agentid="1003")
    assert gone["status"] == "LOGGEDOUT" and gone["queue"] == "" and "queues" not in gone

    # Commands: its queue's agent yes, another queue's no.
    c.send("PAUSE:1001:nope")
    assert errors(await c.until(has("ERROR"))) == ["not allowed"]
    c.send("PAUSE:1002:Training")  # one of the default --pause-reasons
    await c.until(has("AGENT", agentid="1002", status="PAUSED"))
    assert [p["Interface"] for p in peer.pauses()] == [IFACE.format(1002)]


@pytest_twisted.ensureDeferred
async def test_session_survives_a_restart(tmp_path, redis_server, users_path):
    first = await start_auth_rig(tmp_path, redis_server.url, users_path)
    try:
        _, cookie, _ = await first.login("sue")
        assert cookie
    finally:
        await first.stop()
    second = await start_auth_rig(tmp_path, redis_server.url, users_path)
    try:
        c = await second.client(cookie)
        assert (await c.hello())[1]["type"] == "STATS"  # after CONFIG
        assert (await second.request("GET", "config.json", cookie=cookie))[0] == 200
        # In Redis under the prefix, keyed by a hash (no usable cookie in a dump).
        keys = redis_server.command("KEYS", "callcenter:session:*")
        assert len(keys) == 1 and cookie.encode() not in keys[0]
    finally:
        await second.stop()


@pytest_twisted.ensureDeferred
async def test_removing_a_user_closes_their_dashboards(tmp_path, redis_server, users_path):
    arig = await start_auth_rig(tmp_path, redis_server.url, users_path, "--users-watch", "2")
    try:
        _, sue, _ = await arig.login("sue")
        _, root, _ = await arig.login("root")
        a, b = await arig.client(sue), await arig.client(sue)
        other = await arig.client(root)
        for c in (a, b, other):
            await c.hello()
        write_users(users_path, *[u for u in everyone() if u.name != "sue"])
        arig.clock.advance(2)  # the file watch notices the change
        for c in (a, b):
            code, _reason = await c.closed
            assert code == CLOSE_SESSION_ENDED
        assert not other.closed.called
        with pytest.raises(HandshakeRefused):
            await arig.client(sue)
        assert (await arig.login("sue"))[0] == 401
    finally:
        await arig.stop()


@pytest_twisted.ensureDeferred
async def test_logout_ends_the_session_and_its_dashboards(arig):
    _, cookie, _ = await arig.login("root")
    c = await arig.client(cookie)
    await c.hello()
    code, headers, _ = await arig.request("POST", "logout", cookie=cookie)
    assert code == 200 and "Max-Age=0" in headers["set-cookie"]
    code, _reason = await c.closed
    assert code == CLOSE_SESSION_ENDED
    with pytest.raises(HandshakeRefused):
        await arig.client(cookie)


@pytest_twisted.ensureDeferred
async def test_sessions_expire_idle_and_absolute(arig, redis_server):
    sessions = arig.parts.sessions
    _, cookie, _ = await arig.login("root")
    # Idle expiry is the key's TTL in Redis (Redis' clock): the idle time.
    assert 0 < redis_server.command("TTL", sessions.key(cookie).decode()) <= sessions.idle
    c = await arig.client(cookie)
    await c.hello()
    arig.clock.advance(sessions.idle - 10)
    await arig.parts.access.recheck_all()  # an open dashboard keeps its session in use
    assert not c.closed.called
    arig.clock.advance(sessions.absolute - sessions.idle + 20)  # past the absolute limit
    await arig.parts.access.recheck_all()
    code, _ = await c.closed
    assert code == CLOSE_SESSION_ENDED
    assert (await arig.request("GET", "config.json", cookie=cookie))[0] == 401
    assert redis_server.command("EXISTS", sessions.key(cookie).decode()) == 0


@pytest_twisted.ensureDeferred
async def test_trusted_proxy_header_only_from_a_listed_proxy(tmp_path, redis_server, users_path):
    await floor_free_check(tmp_path, redis_server, users_path, trusted="127.0.0.1/32", accepted=True)
    await floor_free_check(tmp_path, redis_server, users_path, trusted="10.0.0.0/8", accepted=False)


async def floor_free_check(tmp_path, redis_server, users_path, trusted, accepted):
    arig = await start_auth_rig(tmp_path, redis_server.url, users_path,
                                "--trusted-proxy-header", "X-Forwarded-User", "--trusted-proxies", trusted)
    try:
        headers = {"X-Forwarded-User": "ann"}
        if accepted:
            c = await arig.rig.client(headers=headers)
            frame = await c.hello()
            assert [o["type"] for o in frame] == ["CONFIG", "STATS"]  # ann is an agent: her own rows only
            c.send("PAUSE:1002")
            assert errors(await c.frame()) == ["not allowed"]
            with pytest.raises(HandshakeRefused):  # a name the users file does not have
                await arig.rig.client(headers={"X-Forwarded-User": "mallory"})
        else:
            with pytest.raises(HandshakeRefused):
                await arig.rig.client(headers=headers)
    finally:
        await arig.stop()
