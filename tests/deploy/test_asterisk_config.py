"""The shipped Asterisk configuration agrees with what the service handles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callcenter.ami import names
from callcenter.options import Options
from callcenter.queuelog import mapping
from tests.deploy import asterisk_conf as ac

CONF = Path(__file__).resolve().parents[2] / "asterisk-config"
QUEUE = "q-callcenter"

# Manager classes, from Asterisk's sources (20/22; unchanged since 12):
# an action's required write class (any one of them suffices; empty = none,
# manager.c: `(writeperm & authority) || authority == 0`) ...
ACTION_CLASSES: dict[str, frozenset[str]] = {
    "Login": frozenset(),  # manager.c
    "Logoff": frozenset(),
    "Challenge": frozenset(),
    "Ping": frozenset(),
    "QueueStatus": frozenset(),  # app_queue.c registers it with 0
    "QueueSummary": frozenset(),
    "QueuePause": frozenset({"agent"}),  # app_queue.c, EVENT_FLAG_AGENT
    "CoreShowChannels": frozenset({"system", "reporting"}),  # manager.c
}
# ... and the class an event is sent with (the user needs all its bits in read=;
# these match the `Privilege:` headers in shared/ami-traces).
EVENT_CLASS: dict[str, str] = {
    "UserEvent": "user",
    "Hangup": "call",
    "HangupRequest": "call",
    "SoftHangupRequest": "call",
    **{name: "agent" for name in names.QUEUE_EVENTS},
}
# Of two classes that both allow an action, the one that allows less.
LEAST_POWERFUL = {"reporting": 0, "agent": 1, "call": 2, "system": 9}


@pytest.fixture(scope="module")
def contexts() -> dict[str, list[ac.Step]]:
    return ac.dialplan(ac.parse(CONF / "extensions.conf"))


def _goto_target(step: ac.Step) -> str:
    assert step.app == "Goto", step
    return ac.split_args(step.args)[0]


def _apps(steps: list[ac.Step], app: str) -> list[list[str]]:
    return [ac.split_args(s.args) for s in steps if s.app == app]


def _reachable(contexts: dict[str, list[ac.Step]], start: str) -> set[str]:
    """Contexts reachable from start through Goto/Gosub/GotoIf/hangup handlers."""
    seen, todo = set(), [start]
    while todo:
        ctx = todo.pop()
        if ctx in seen or ctx not in contexts:
            continue
        seen.add(ctx)
        for step in contexts[ctx]:
            for m in re.finditer(r"(?:Goto|Gosub)\(([\w-]+),", f"{step.app}({step.args})"):
                todo.append(m.group(1))
            m = re.search(r"hangup_handler_push\)=([\w-]+),", step.args)
            if m:
                todo.append(m.group(1))
    return seen


def test_feature_codes_reach_the_right_contexts(contexts):
    public = {s.exten: s for s in contexts["public"]}
    assert set(public) == {"113", "011", "022"}
    assert _goto_target(public["113"]) == "callcenter"
    assert _goto_target(public["011"]) == "agent-login"
    assert _goto_target(public["022"]) == "agent-logout"

    callcenter = contexts["callcenter"]
    assert [a[0] for a in _apps(callcenter, "Queue")] == [QUEUE]
    assert [s.app for s in callcenter].index("UserEvent") < [s.app for s in callcenter].index("Queue")

    login = contexts["agent-login"]
    (add,) = _apps(login, "AddQueueMember")
    assert add[0] == QUEUE
    (pause,) = _apps(login, "PauseQueueMember")
    assert pause[:2] == [QUEUE, add[1]]
    (remove,) = _apps(contexts["agent-logout"], "RemoveQueueMember")
    assert remove[0] == QUEUE


def test_agent_member_is_local_channel_named_by_agent_id(contexts):
    for ctx in ("agent-login", "agent-logout"):
        sets = dict(a[0].split("=", 1) for a in _apps(contexts[ctx], "Set"))
        assert sets["member"] == "Local/${agentid}@agent-connect"
    (add,) = _apps(contexts["agent-login"], "AddQueueMember")
    assert add[1] == "${member}" and add[4] == "${agentid}"  # membername = agent id
    # The member's context rings the agent's PJSIP phone.
    (dial,) = _apps(contexts["agent-connect"], "Dial")
    assert dial[0] == "PJSIP/${EXTEN}"
    assert {s.exten for s in contexts["agent-connect"]} == {"_X."}


def test_agent_id_comes_from_the_pjsip_endpoint(contexts):
    for ctx in ("agent-login", "agent-logout"):
        assert "agent-id" in _reachable(contexts, ctx)
    text = " ".join(f"{s.app}({s.args})" for s in contexts["agent-id"])
    assert "agentid=${CHANNEL(endpoint)}" in text
    # chan_sip's CHANNEL(peername) is gone (comments are not steps).
    assert not [s for steps in contexts.values() for s in steps if "peername" in s.args]


def _user_events(contexts) -> dict[str, list[list[str]]]:
    events: dict[str, list[list[str]]] = {}
    for steps in contexts.values():
        for args in _apps(steps, "UserEvent"):
            events.setdefault(args[0], []).append(args[1:])
    return events


def test_user_events_are_exactly_those_the_service_handles(contexts):
    assert set(_user_events(contexts)) == set(names.USER_EVENTS)


def test_queue_log_lines_are_exactly_those_the_service_reads(contexts):
    verbs = {args[3] for steps in contexts.values() for args in _apps(steps, "QueueLog")}
    assert verbs == set(names.QUEUE_LOG_VERBS)
    assert names.QUEUE_LOG_VERBS <= mapping.VERBS


def test_the_caller_line_is_logged_with_the_caller_event_before_queue(contexts):
    """QueueLog(queuename,uniqueid,agent,event,additionalinfo): the channel's own
    Uniqueid (the call's id everywhere), right after UserEvent(CALLER), so the
    queue log's second is that event's, and before Queue() (its ENTERQUEUE)."""
    steps = contexts["callcenter"]
    apps = [s.app for s in steps]
    (line,) = _apps(steps, "QueueLog")
    assert line == ["NONE", "${UNIQUEID}", "NONE", "CALLER", "${CALLERID(num)}"]
    assert apps.index("QueueLog") == apps.index("UserEvent") + 1
    assert apps.index("QueueLog") < apps.index("Queue")


def test_login_and_logout_events_carry_agentid_and_member(contexts):
    events = _user_events(contexts)
    for name in ("LOGGEDIN", "LOGGEDOUT"):
        for body in events[name]:
            headers = dict(h.split(":", 1) for h in body)
            # The login also sends the phone's caller-id name (issue 15), read by the
            # service as AgentLoggedIn.name; the old fields stay as they were.
            extra = {"name": "${CALLERID(name)}"} if name == "LOGGEDIN" else {}
            assert {k.strip(): v.strip() for k, v in headers.items()} == {
                "agentid": "${agentid}",
                "member": "${member}",
                **extra,
            }
    for name in ("CALLER", "CALLERHANGUP"):
        assert events[name] == [[]]


def test_caller_gets_the_hangup_handler_that_reports_callerhangup(contexts):
    pushes = [s for s in contexts["callcenter"] if "hangup_handler_push" in s.args]
    assert len(pushes) == 1
    handler = re.search(r"hangup_handler_push\)=([\w-]+),", pushes[0].args).group(1)
    assert _apps(contexts[handler], "UserEvent") == [["CALLERHANGUP"]]
    steps = [s.app for s in contexts["callcenter"]]
    assert steps.index("Set") < steps.index("Queue")  # pushed before the caller can hang up in queue


def test_hangup_handler_never_unpauses(contexts):
    handler = re.search(
        r"hangup_handler_push\)=([\w-]+),",
        " ".join(s.args for s in contexts["callcenter"]),
    ).group(1)
    for ctx in _reachable(contexts, handler):
        apps = {s.app.lower() for s in contexts[ctx]}
        assert not apps & {"unpausequeuemember", "pausequeuemember", "system", "agi"}, ctx
        assert "QUEUE_MEMBER(" not in " ".join(s.args for s in contexts[ctx])
    # Only the service (QueuePause over AMI) makes an agent available.
    for steps in contexts.values():
        assert not _apps(steps, "UnpauseQueueMember")


def _classes(value: str) -> set[str]:
    return {c.strip() for c in value.split(",") if c.strip()}


def test_manager_user_has_exactly_the_classes_the_service_needs():
    sections = ac.parse(CONF / "manager.conf")
    general = ac.section(sections, "general")
    assert general.get("enabled") == "yes"
    assert general.get("bindaddr") == "127.0.0.1"
    assert general.get("timestampevents") == "yes"
    assert general.get("webenabled") == "no"

    users = [s for s in sections if s.name not in ("", "general")]
    assert [u.name for u in users] == [dict((o[0], o[2]) for o in Options.optParameters)["ami-user"]]
    user = users[0]

    # Every name the service uses has a known class (a new action or event
    # in callcenter/ami/names.py must be added above, from Asterisk's source).
    actions = set(names.ACTIONS) | {"Login", "Logoff", "Challenge"}
    assert actions <= set(ACTION_CLASSES), actions - set(ACTION_CLASSES)
    assert set(names.EVENTS) <= set(EVENT_CLASS), set(names.EVENTS) - set(EVENT_CLASS)

    read = _classes(user.get("read", ""))
    assert read == {EVENT_CLASS[e] for e in names.EVENTS}

    write = _classes(user.get("write", ""))
    needed = [ACTION_CLASSES[a] for a in actions if ACTION_CLASSES[a]]
    for classes in needed:
        assert write & classes, f"no write class for an action needing one of {classes}"
    for cls in write:  # and no more: every class is the only one for some action
        assert any(write & classes == {cls} for classes in needed), f"write class {cls} is not needed"
    for classes in needed:  # and the least powerful choice
        assert min(write & classes, key=LEAST_POWERFUL.get) == min(classes, key=LEAST_POWERFUL.get)
    assert "all" not in read | write and "system" not in write

    assert user.getall("permit") == ["127.0.0.1/255.255.255.255"]
    assert user.getall("deny") == ["0.0.0.0/0.0.0.0"]


def test_no_secret_is_written_in_the_repository():
    for path in CONF.iterdir():
        for section in ac.parse(path):
            for key, _value in section.items:
                assert key not in ("secret", "password", "md5_cred"), (path.name, section.name)
    user = ac.section(ac.parse(CONF / "manager.conf"), "callcenter")
    assert user.includes == ["manager_callcenter_secret.conf"]


def test_queue_settings():
    sections = ac.parse(CONF / "queues.conf")
    q = ac.section(sections, QUEUE)
    sla_default = dict((o[0], o[2]) for o in Options.optParameters)["sla"]
    assert int(q.get("servicelevel")) == int(sla_default)
    assert q.get("wrapuptime") == "15"
    assert q.get("ringinuse") == "no"
    assert q.get("setinterfacevar") == "yes"
    assert q.get("joinempty") == "yes"
    assert q.get("autopause") in ("yes", "all")
    assert q.get("strategy") in ("ringall", "leastrecent", "fewestcalls", "random", "rrmemory",
                                 "rrordered", "linear", "wrandom")
    assert int(q.get("announce-frequency")) > 0
    assert q.get("announce-position") != "no" or q.get("announce-holdtime") != "no"


def test_queues_offer_callers_to_every_free_agent():
    # app_queue.c: without autofill only the caller at the head of the queue is
    # offered (is_our_turn: "qe->parent->autofill || qe->pos == 1").
    general = ac.section(ac.parse(CONF / "queues.conf"), "general")
    assert general.get("autofill") == "yes"
    assert ac.section(ac.parse(CONF / "queues.conf"), QUEUE).get("autofill") in (None, "yes")


def test_announcement_comment_says_what_app_queue_does():
    # app_queue.c queue_exec sets qe.last_pos = 0, so say_position's
    # "(now - qe->last_pos) < minannouncefrequency" never holds for the first
    # announcement: it comes as soon as the caller waits, not after 30 s.
    text = (CONF / "queues.conf").read_text()
    comment = " ".join(line.lstrip("; ") for line in text.splitlines() if line.startswith(";"))
    assert "first one after" not in comment
    assert "as soon as they have to wait" in comment
    q = ac.section(ac.parse(CONF / "queues.conf"), QUEUE)
    assert q.get("announce-frequency") == "60" and q.get("min-announce-frequency") == "30"
    assert q.get("announce-holdtime") == "once"
    assert q.get("periodic-announce-frequency") == "90" and "first after 90 s" in comment


def _rendered_pjsip(tmp_path: Path, **variables: object) -> list[ac.Section]:
    """pjsip.conf with the role's generated includes, as the role installs them."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "pjsip.conf").write_bytes((CONF / "pjsip.conf").read_bytes())
    for name in ("pjsip_transports.conf", "pjsip_phones.conf"):
        (tmp_path / name).write_text(ac.render_role_template(f"{name}.j2", **variables))
    return ac.parse(tmp_path / "pjsip.conf", follow_includes=True)


def _binds(sections: list[ac.Section]) -> dict[str, str]:
    return {s.get("protocol"): s.get("bind") for s in sections if s.get("type") == "transport"}


PHONE = {"id": "1001", "name": "Agent 1001", "password": "phone-password-1001"}


def test_pjsip_transports_and_phone_template(contexts, tmp_path):
    assert "bind=" not in (CONF / "pjsip.conf").read_text().replace("; ", "")  # only in the template
    sections = _rendered_pjsip(tmp_path)
    assert _binds(sections) == {"udp": "0.0.0.0:5060", "tcp": "0.0.0.0:5060"}  # the defaults, as before
    phone = ac.section(sections, "phone")
    assert phone.template and phone.get("type") == "endpoint"
    assert phone.get("context") == "public" and "public" in contexts
    assert ac.section(sections, "phone-auth").template
    assert ac.section(sections, "phone-aor").template
    assert sections[0].includes == ["pjsip_transports.conf"]
    assert sections[-1].includes == ["pjsip_phones.conf"]


def test_rendered_pjsip_uses_the_sip_and_rtp_variables(tmp_path):
    default = _rendered_pjsip(tmp_path / "a", asterisk_phones=[PHONE])
    endpoint = next(s for s in default if s.name == "1001" and s.parents == ["phone"])
    assert endpoint.get("media_address") is None  # default: RTP on every interface
    sections = _rendered_pjsip(tmp_path / "b", asterisk_phones=[PHONE], asterisk_sip_bind_address="192.0.2.10",
                               asterisk_sip_port=5070, asterisk_rtp_address="192.0.2.11")
    assert _binds(sections) == {"udp": "192.0.2.10:5070", "tcp": "192.0.2.10:5070"}
    endpoint = next(s for s in sections if s.name == "1001" and s.parents == ["phone"])
    assert (endpoint.get("media_address"), endpoint.get("bind_rtp_to_media_address")) == ("192.0.2.11", "yes")
    assert _binds(_rendered_pjsip(tmp_path / "c", asterisk_sip_bind_address="::")) == {
        "udp": "[::]:5060", "tcp": "[::]:5060"}
