"""The screen-pop template (--screen-pop-url): checked at start, filled with
percent-encoded values (RFC 3986: only unreserved characters stay as they are)."""

from __future__ import annotations

import pytest
from twisted.python import usage

from callcenter.options import Options
from callcenter.web.screen_pop import MAX_TEMPLATE, PLACEHOLDERS, ScreenPop

CRM = "https://crm.example/search?phone={callerid}&queue={queue}&call={uniqueid}"


def parse_options(*argv: str, environ: dict[str, str] | None = None) -> Options:
    opts = Options(environ=environ or {})
    opts.parseOptions(["--simulate", "--report", "/dev/null", *argv])
    return opts


def test_the_issue_example_filled() -> None:
    pop = ScreenPop.parse(CRM)
    assert pop.url({"callerid": "5550001", "queue": "q-callcenter", "uniqueid": "1795665079.5"}) == \
        "https://crm.example/search?phone=5550001&queue=q-callcenter&call=1795665079.5"


@pytest.mark.parametrize(("value", "encoded"), [
    ("+32 2 555 01 01", "%2B32%202%20555%2001%2001"),
    ("a&b=c", "a%26b%3Dc"),
    ("x#frag", "x%23frag"),
    ("../../admin?x=1", "..%2F..%2Fadmin%3Fx%3D1"),
    ("100%", "100%25"),
    ("Zoë Ñúñez", "Zo%C3%AB%20%C3%91%C3%BA%C3%B1ez"),
    ("{queue}", "%7Bqueue%7D"),  # a value is never a template itself
    ("-._~AZaz09", "-._~AZaz09"),  # unreserved characters stay
    ("", ""),
])
def test_values_are_percent_encoded(value: str, encoded: str) -> None:
    pop = ScreenPop.parse("https://crm.example/p/{callername}?n={callerid}")
    assert pop.url({"callerid": value, "callername": value}) == f"https://crm.example/p/{encoded}?n={encoded}"


def test_every_placeholder_and_missing_values() -> None:
    template = "http://crm.example:8080/x?" + "&".join(f"{n}={{{n}}}" for n in PLACEHOLDERS)
    pop = ScreenPop.parse(template)
    assert pop.url({"callerid": "1", "hold": 7, "agent": None}) == (
        "http://crm.example:8080/x?callerid=1&callername=&queue=&uniqueid=&agent=&hold=7")


def test_literal_braces_and_fragment() -> None:
    pop = ScreenPop.parse("https://crm.example/#/calls/{uniqueid}?json={{x}}")
    assert pop.url({"uniqueid": "a b"}) == "https://crm.example/#/calls/a%20b?json={x}"


def test_decorate_adds_the_address_to_a_connect_in_progress_only() -> None:
    pop = ScreenPop.parse(CRM + "&agent={agent}&wait={hold}&name={callername}")
    connect = {"type": "CONNECT", "id": "1.5", "queue": "q 1", "status": "INCALL",
               "agent": {"type": "AGENT", "agentid": "1001"},
               "call": {"type": "CALL", "id": "1.5", "callerid": "+3225550101", "hold": 4,
                        "callername": "Ann & Bob"}}
    out = pop.decorate(connect)
    assert out["screen_pop"] == ("https://crm.example/search?phone=%2B3225550101&queue=q%201&call=1.5"
                                 "&agent=1001&wait=4&name=Ann%20%26%20Bob")
    assert "screen_pop" not in connect  # the center's object is not changed
    ended = dict(connect, status="HANGUP")
    assert pop.decorate(ended) is ended
    agent = {"type": "AGENT", "agentid": "1001"}
    assert pop.decorate(agent) is agent


@pytest.mark.parametrize("template", [
    "ftp://crm.example/{callerid}",
    "javascript:alert({callerid})",
    "data:text/html,{callerid}",
    "file:///etc/passwd?{callerid}",
    "//crm.example/{callerid}",
    "crm.example/{callerid}",
    "https:/crm.example/{callerid}",
    "https://",
    "https:///path",
])
def test_only_http_and_https_addresses(template: str) -> None:
    with pytest.raises(ValueError, match="http"):
        ScreenPop.parse(template)


@pytest.mark.parametrize("template", [
    "https://{callerid}.crm.example/",
    "https://crm.example{queue}/x",
    "https://crm.example:{hold}/x",
    "https://{agent}@crm.example/x",
])
def test_no_placeholder_before_the_path(template: str) -> None:
    # A caller id must never choose the host the agent's browser goes to.
    with pytest.raises(ValueError, match="before any"):
        ScreenPop.parse(template)


@pytest.mark.parametrize(("template", "message"), [
    ("https://crm.example/?p={phone}", "unknown placeholder {phone}"),
    ("https://crm.example/?p={}", "unknown placeholder {}"),
    ("https://crm.example/?p={0}", "unknown placeholder {0}"),
    ("https://crm.example/?p={callerid.real}", "unknown placeholder"),
    ("https://crm.example/?p={callerid[0]}", "unknown placeholder"),
    ("https://crm.example/?p={callerid!r}", "no format or conversion"),
    ("https://crm.example/?p={callerid:>20}", "no format or conversion"),
    ("https://crm.example/?p={callerid", "brace"),
    ("https://crm.example/?p=callerid}", "brace"),
    ("https://crm.example/?p={callerid}&x=a b", "spaces or control"),
    ("https://crm.example/?p={callerid}\r\nX: y", "spaces or control"),
    ("", "1 to"),
    ("https://crm.example/?" + "a" * MAX_TEMPLATE, "1 to"),
])
def test_bad_templates_are_refused_with_a_reason(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        ScreenPop.parse(template)


def test_too_long_an_address_offers_no_screen_pop() -> None:
    pop = ScreenPop.parse("https://crm.example/?n={callername}")
    assert pop.url({"callername": "é" * 3000}) is None  # 18,000 characters encoded
    connect = {"type": "CONNECT", "id": "1", "status": "INCALL", "call": {"callername": "é" * 3000}}
    assert "screen_pop" not in pop.decorate(connect)


def test_options_check_the_template_at_start() -> None:
    opts = parse_options("--screen-pop-url", CRM, "--screen-pop-auto")
    assert opts["screen-pop"] == ScreenPop(CRM, auto=True)
    assert parse_options()["screen-pop"] is None
    env = parse_options(environ={"CALLCENTER_SCREEN_POP_URL": CRM})
    assert env["screen-pop"] == ScreenPop(CRM, auto=False)
    with pytest.raises(usage.UsageError, match="unknown placeholder {phone}"):
        parse_options("--screen-pop-url", "https://crm.example/?p={phone}")
    with pytest.raises(usage.UsageError, match="http"):
        parse_options("--screen-pop-url", "javascript:alert(1)//")
    with pytest.raises(usage.UsageError, match="--screen-pop-auto needs --screen-pop-url"):
        parse_options("--screen-pop-auto")
