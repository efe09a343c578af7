"""The simulator by default behaves like the shipped asterisk-config/ (the demo's PBX).

* Its AMI user reads the shipped manager.conf classes: no FullyBooted after
  login (no "system"), and only agent/call/user events reach the session.
* Its hangup handler is the shipped one: UserEvent CALLERHANGUP and nothing
  else, so a pause set during a call survives the hangup (issue 9, point 8).
* The service's core never imports it (only ``--simulate`` does, lazily).

The recorded rig (read=all, the original hangup handler that unpaused) stays
available as ``read="all", hangup_unpauses=True``: tracekit.make_pbx uses it
to compare against the recordings.
"""

from __future__ import annotations

import subprocess
import sys

from support.fake_asterisk import SHIPPED_READ as MANAGER_CONF_READ

from callcenter.simulator.clock import run_for
from callcenter.simulator.server import SHIPPED_READ

from .test_model import agent_login, call, events
from .tracekit import Session, login, make_pbx

AGENT = "Local/1001@agent-connect"


def shipped():
    """A simulator with its defaults (the shipped configuration), a logged-in session."""
    pbx, clock = make_pbx(read=SHIPPED_READ, hangup_unpauses=False)
    s = Session(pbx)
    login(s)
    return pbx, clock, s


def test_the_simulators_user_reads_what_the_shipped_manager_conf_grants():
    assert SHIPPED_READ == MANAGER_CONF_READ


def test_login_with_the_shipped_rights_gets_no_fullybooted_and_no_other_classes():
    pbx, clock, s = shipped()
    assert [m.name for m in s.messages] == ["Success"]  # no FullyBooted (system), no SuccessfulAuth (security)
    agent_login(s, clock, "1001")
    call(s, "5550001", talk=5)
    run_for(clock, 15)
    msgs = events(s.read())
    privileges = {m["Privilege"] for m in msgs}
    assert privileges <= {"agent,all", "call,all", "user,all"}, privileges
    names = {m.name for m in msgs}
    assert {"QueueMemberAdded", "QueueCallerJoin", "AgentConnect", "AgentComplete", "UserEvent", "Hangup"} <= names
    assert not names & {"Newexten", "VarSet", "FullyBooted", "SuccessfulAuth"}  # dialplan, system, security


def test_events_header_and_action_cannot_widen_the_rights():
    pbx, clock = make_pbx(read=SHIPPED_READ)
    s = Session(pbx)
    login(s, Events="on")
    assert [m.name for m in s.messages] == ["Success"]
    s.action("Events", EventMask="system,dialplan,agent")
    assert s.read()[0]["Events"] == "On"
    agent_login(s, clock, "1001")
    assert {m["Privilege"] for m in events(s.read())} == {"agent,all"}


def test_a_session_that_reads_system_gets_fullybooted():
    pbx, clock = make_pbx(read=SHIPPED_READ + ",system")
    s = Session(pbx)
    login(s)
    assert [m.name for m in s.messages] == ["Success", "FullyBooted"]


def _pause_during_call(s, clock, **call_kw) -> list:
    agent_login(s, clock, "1001")
    call(s, "5550001", **call_kw)
    run_for(clock, 4)
    assert events(s.read(), "AgentConnect")
    s.action("QueuePause", Interface=AGENT, Paused="true", Reason="after call work")
    run_for(clock, 60)
    return s.read()


def test_a_pause_set_during_a_call_survives_the_agents_hangup():
    pbx, clock, s = shipped()
    msgs = _pause_during_call(s, clock, talk=10)
    assert [m["UserEvent"] for m in events(msgs, "UserEvent")] == ["CALLERHANGUP"]
    assert events(msgs, "AgentComplete")[0]["Reason"] == "agent"
    assert [m["Paused"] for m in events(msgs, "QueueMemberPause")] == ["1"]  # ours; none after the hangup
    member = pbx.model.queues["q-callcenter"].members[AGENT.lower()]
    assert (member.paused, member.reason) == (True, "after call work")


def test_a_pause_set_during_a_call_survives_the_callers_hangup():
    pbx, clock, s = shipped()
    msgs = _pause_during_call(s, clock, patience=8, talk=60)  # the caller gives up mid-call
    assert events(msgs, "AgentComplete")[0]["Reason"] == "caller"
    assert [m["Paused"] for m in events(msgs, "QueueMemberPause")] == ["1"]
    s.action("QueueStatus", Queue="q-callcenter", ActionID="st")
    member = next(m for m in s.read() if m.name == "QueueMember")
    assert (member["Paused"], member["PausedReason"]) == ("1", "after call work")


def test_the_recorded_rigs_hangup_handler_still_unpauses():
    pbx, clock = make_pbx()  # tracekit: the rig of the recordings
    s = Session(pbx)
    login(s)
    msgs = _pause_during_call(s, clock, talk=10)
    assert [m["Paused"] for m in events(msgs, "QueueMemberPause")] == ["1", "0"]


def test_the_services_core_does_not_import_the_simulator():
    code = (
        "import sys\n"
        "import callcenter.service, callcenter.center, callcenter.ami.client, callcenter.web\n"
        "import callcenter.store.redis_store, callcenter.options\n"
        "from callcenter.service import makeService\n"
        "bad = sorted(m for m in sys.modules if m.startswith('callcenter.simulator'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
