"""Issue 15's settings: --agents, --pause-reasons/--pause-free-text, --wrapup-time,
and the names and reasons they give the AGENT objects (in-process, fake clock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python import usage

from callcenter.agents_file import (
    AgentsFileError,
    AgentsReloader,
    load_agents,
    parse_csv,
    parse_toml,
)
from callcenter.ami.message import Message
from callcenter.core.pause_reasons import PauseReasons, UnknownReason, parse_reasons
from callcenter.options import Options
from callcenter.web.page_config import config_object

from . import traces
from .test_center import T0, Q, answered_call, login, member


def _options(*args: str, tmp_path: Path) -> Options:
    o = Options(environ={})
    o.parseOptions(["--simulate", "--report", str(tmp_path / "r.csv"), *args])
    return o


def test_agents_csv_and_toml(tmp_path: Path) -> None:
    csv_text = "id,name,team\n# a comment\n1001,Ann Smith,Sales\n\n1002, Bob ,\n1003,\"Roe, Jane\"\n"
    assert parse_csv(csv_text) == {
        "1001": ("Ann Smith", "Sales"), "1002": ("Bob", ""), "1003": ("Roe, Jane", "")}
    toml_text = '[1001]\nname = "Ann Smith"\nteam = "Sales"\n["PJSIP/2001"]\nname = "Zoé"\n'
    assert parse_toml(toml_text) == {"1001": ("Ann Smith", "Sales"), "PJSIP/2001": ("Zoé", "")}
    assert parse_toml('[agents.1001]\nname = "Ann"\n') == {"1001": ("Ann", "")}
    path = tmp_path / "agents.toml"
    path.write_text(toml_text)
    assert load_agents(str(path))["1001"] == ("Ann Smith", "Sales")


def test_bad_agents_lines_are_each_named(tmp_path: Path) -> None:
    bad = "1001,Ann\n1001,Ann again\n1002\n1003,,Sales\n1004,\x07bell\n"
    with pytest.raises(AgentsFileError) as err:
        parse_csv(bad, "a.csv")
    text = str(err.value)
    assert text.startswith("--agents a.csv: 4 bad line(s): ")
    for where in ("line 2: agent id '1001' is given twice", "line 3: expected id,name[,team]",
                  "line 4: name '' must be", "line 5: name '\\x07bell' must be"):
        assert where in text
    with pytest.raises(AgentsFileError, match="agent '1001': unknown key"):
        parse_toml('[1001]\nname = "A"\nrole = "x"\n')
    with pytest.raises(AgentsFileError, match="cannot read"):
        load_agents(str(tmp_path / "missing.csv"))
    (tmp_path / "bad.csv").write_text(bad)
    with pytest.raises(usage.UsageError, match="bad line"):
        _options("--agents", str(tmp_path / "bad.csv"), tmp_path=tmp_path)


def test_options_parse_and_refuse(tmp_path: Path) -> None:
    o = _options(tmp_path=tmp_path)
    assert o["pause-reasons"] == ("Break", "Lunch", "Training", "Coaching")  # issue 15's default
    assert not o["pause-free-text"] and o["wrapup-time"] == (0, {})
    o = _options("--pause-reasons", " Break , Tea time", "--pause-free-text",
                 "--wrapup-time", "q-sales=10,q-support=30,15", tmp_path=tmp_path)
    assert o["pause-reasons"] == ("Break", "Tea time") and o["pause-free-text"]
    assert o["wrapup-time"] == (15, {"q-sales": 10, "q-support": 30})
    for args, message in (
        (("--pause-reasons", "Break,break"), "given twice"),
        (("--pause-reasons", "x" * 65), "at most 64"),
        (("--wrapup-time", "q-sales=soon"), "whole seconds"),
        (("--wrapup-time", "bad queue=3"), "not a queue name"),
    ):
        with pytest.raises(usage.UsageError, match=message):
            _options(*args, tmp_path=tmp_path)
    o = Options(environ={"CALLCENTER_PAUSE_REASONS": "Lunch", "CALLCENTER_WRAPUP_TIME": "5"})
    o.parseOptions(["--simulate", "--report", str(tmp_path / "r.csv")])
    assert o["pause-reasons"] == ("Lunch",) and o["wrapup-time"] == (5, {})


def test_pause_reasons_compare_ignoring_case() -> None:
    reasons = PauseReasons(parse_reasons("Break,Lunch"))
    assert reasons.check("LUNCH") == "Lunch" and reasons.check("") == ""
    with pytest.raises(UnknownReason, match="unknown pause reason 'Nap': use one of Break, Lunch"):
        reasons.check("Nap")
    assert PauseReasons(("Lunch",), free_text=True).check("Nap") == "Nap"
    config = config_object(reasons)  # other tasks add keys (alerts)
    assert {k: config[k] for k in ("type", "pause_reasons", "pause_free_text")} == {
        "type": "CONFIG", "pause_reasons": ["Break", "Lunch"], "pause_free_text": False}


def test_names_from_the_login_and_from_agents_file() -> None:
    out = traces.new_center(T0)
    c = out.center
    c.roster.directory = {"1002": ("Bob Roe", "Support")}
    for agent in ("1001", "1002"):
        login(c, agent, T0)
        # The shipped dialplan's LOGGEDIN (extensions.conf: name: ${CALLERID(name)}).
        c.handle_event(Message([
            ("Event", "UserEvent"), ("Timestamp", f"{T0 + 2:.6f}"), ("UserEvent", "LOGGEDIN"),
            ("CallerIDName", "Phone"), ("agentid", agent), ("member", f"Local/{agent}@agent-connect"),
            ("name", f"Phone {agent}")]))
    a1, a2 = c.agents["1001"].to_json(), c.agents["1002"].to_json()
    assert (a1["name"], a1["team"]) == ("Phone 1001", "")
    assert (a2["name"], a2["team"]) == ("Bob Roe", "Support")  # --agents wins


def test_a_phone_reason_in_any_case_shows_and_reports_in_the_configured_spelling() -> None:
    out = traces.new_center(T0)
    c = out.center
    login(c, "1001", T0)
    c.handle_event(member("QueueMemberPause", "1001", T0 + 10, paused="1", reason="TRAINING"))
    assert c.agents["1001"].to_json()["reason"] == "Training"
    c.handle_event(member("QueueMemberPause", "1001", T0 + 70, paused="0"))
    line = out.lines[-1].rstrip("\n").split(";")
    assert line[1:5] == ["AGENT", "1001", "PAUSED", "60"] and line[7] == "Training"


def test_member_wrapuptime_wins_over_the_queue_setting() -> None:
    out = traces.new_center(T0)
    c = out.center
    c.flow.wrapup_default = 15
    c.handle_event(member("QueueMemberAdded", "1001", T0, Wrapuptime="4", LoginTime=str(int(T0))))
    c.handle_event(member("QueueMemberPause", "1001", T0 + 1, paused="0", Wrapuptime="4"))
    for m in answered_call("9.1", "1001", T0 + 10, hold=2, talk=5):
        c.handle_event(m)
    a = c.agents["1001"].to_json()
    assert a["last_call"] == int(T0 + 17) and a["wrapup_until"] == int(T0 + 17) + 4
    assert c.stats()["queues"][Q]["agents_available"] == 0
    out.clock.advance(T0 + 30 - out.clock.seconds())  # the wrap-up timer has run
    assert c.stats()["queues"][Q]["agents_available"] == 1



def _reloading_center(path: Path) -> tuple[Any, AgentsReloader, list[dict[str, Any]]]:
    """A center started with ``path`` as --agents, agents 1001-1003 logged in,
    and the AGENT objects it publishes from then on."""
    out = traces.new_center(T0)
    c = out.center
    c.roster.directory = load_agents(str(path))  # as Options gives it at start
    for agent in ("1001", "1002", "1003"):
        login(c, agent, T0)
    published: list[dict[str, Any]] = []
    c.subscribe(lambda ch: published.extend(o for o in ch.objects if o["type"] == "AGENT"))
    # At once, where the service reads in the reactor's thread pool.
    reloader = AgentsReloader(str(path), c.set_agent_directory, len(c.roster.directory),
                              lambda fn, p: defer.maybeDeferred(fn, p))
    return c, reloader, published


def test_sighup_rereads_the_agents_file_and_publishes_who_changed(tmp_path: Path) -> None:
    path = tmp_path / "agents.csv"
    path.write_text("1001,Ann Smith,Sales\n1002,Bob Roe,Support\n")
    c, reloader, published = _reloading_center(path)
    statuses = {a: c.agents[a].status for a in ("1001", "1002", "1003")}
    path.write_text("1002,Robert Roe,Support\n1003,Cy Doe,Sales\n")
    reloader.reload()
    # 1002 renamed, 1003 newly listed, 1001 no longer listed: its team goes,
    # its name stays until its phone sends one.
    assert sorted((o["agentid"], o["name"], o["team"]) for o in published) == [
        ("1001", "Ann Smith", ""), ("1002", "Robert Roe", "Support"), ("1003", "Cy Doe", "Sales")]
    assert {a: c.agents[a].status for a in statuses} == statuses  # a name is not a status
    assert c.roster.directory == {"1002": ("Robert Roe", "Support"), "1003": ("Cy Doe", "Sales")}

    published.clear()
    reloader.reload()  # the same file again: nobody changed, nothing sent
    assert published == []
    # An agent who logs in later gets the new name (Roster.ensure).
    login(c, "1004", T0 + 5)
    path.write_text("1004,Di Fox,\n")
    reloader.reload()
    assert ("1004", "Di Fox", "") in [(o["agentid"], o["name"], o["team"]) for o in published]


@pytest.mark.parametrize("content", [
    "1001,Ann\n1001,Ann twice\n",  # a bad line
    b"1001,Ann \xff\n",  # not UTF-8
    None,  # gone
])
def test_a_bad_agents_file_on_sighup_keeps_the_directory_and_says_why(tmp_path: Path, content: Any) -> None:
    path = tmp_path / "agents.csv"
    path.write_text("1001,Ann Smith,Sales\n1002,Bob Roe,Support\n")
    c, reloader, published = _reloading_center(path)
    before = dict(c.roster.directory)
    if content is None:
        path.unlink()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        reloader.reload()
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert c.roster.directory == before and published == []
    assert c.agents["1002"].to_json()["name"] == "Bob Roe"
    errors = [formatEvent(e) for e in events if e.get("log_level") == LogLevel.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"--agents file not reloaded, keeping the 2 agents loaded: --agents {path}: ")
    assert "Traceback" not in errors[0]


def test_a_sighup_during_a_reread_rereads_once_more_after_it(tmp_path: Path) -> None:
    path = tmp_path / "agents.csv"
    path.write_text("1001,Ann,\n")
    c, _, published = _reloading_center(path)
    reads: list[defer.Deferred] = []

    def held(fn: Any, p: str) -> defer.Deferred:
        reads.append(defer.Deferred())
        return reads[-1].addCallback(lambda _: fn(p))

    reloader = AgentsReloader(str(path), c.set_agent_directory, 1, held)
    first = reloader.reload()
    path.write_text("1001,Ann B,\n")
    second, third = reloader.reload(), reloader.reload()
    assert len(reads) == 1  # never two at once
    reads[0].callback(None)
    assert len(reads) == 2 and not first.called  # the SIGHUPs during it: one more read
    path.write_text("1001,Ann C,\n")
    reads[1].callback(None)
    assert first.called and second.called and third.called
    assert [o["name"] for o in published] == ["Ann B", "Ann C"]
