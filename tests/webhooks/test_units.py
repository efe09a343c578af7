"""Delivery, backoff, queue bounds and configuration on a fake clock and a fake POST."""

from __future__ import annotations

import json

import pytest
from store.support import Rig, trace_events
from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock

from callcenter.options import Options
from callcenter.webhooks.config import ConfigError, HookConfig, load_hooks_file
from callcenter.webhooks.delivery import HookSender, retryable
from callcenter.webhooks.outbox import Outbox

from .support import SECRET, Request, signature_ok


class FakePost:
    """Answers each POST with the next of ``answers`` (a code, an exception, or
    None to leave it hanging); records what was sent."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[bytes, dict]] = []
        self.pending: list[defer.Deferred] = []

    def __call__(self, url, body, headers, timeout):
        self.sent.append((body, headers))
        answer = self.answers.pop(0) if self.answers else 200
        if answer is None:
            d = defer.Deferred()
            self.pending.append(d)
            return d
        if isinstance(answer, Exception):
            return defer.fail(answer)
        return defer.succeed(answer)


def _outbox(clock, **kw) -> tuple[Outbox, HookConfig]:
    events = trace_events("answered")
    rig = Rig(events[0][0])
    hook = HookConfig(name="t", url="http://127.0.0.1:9/h", secret=SECRET, **kw)
    outbox = Outbox(clock, rig.center, [hook], "p:")
    rig.center.subscribe(outbox.on_changes)
    outbox.restored()
    return outbox, hook, rig, events


def test_retry_delays_double_up_to_the_bound_with_jitter_off(logs):
    clock = Clock()
    outbox, hook, rig, events = _outbox(clock, retry_initial=1.0, retry_max=8.0, jitter=0.0)
    post = FakePost(*([503] * 6), 200)
    sender = HookSender(clock, outbox.queues[0], outbox, post)
    rig.feed(events[:40])
    assert outbox.queues[0].entries
    sender.wake()
    clock.advance(0)
    delays = []
    for _ in range(6):
        assert sender.state == "waiting"
        delays.append(sender._timer.getTime() - clock.seconds())
        clock.advance(delays[-1])
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    # One warning when the outage starts, the rest rate-limited, one line when it ends.
    assert len(logs.matching("delivery failed (HTTP 503)")) == 1
    assert len(logs.matching("still failing")) == 1  # LogThrottle's burst, the rest counted
    assert len(logs.matching("delivering again after 31 s")) == 1
    # The 7th try succeeded, and the same body was sent every time.
    assert len({body for body, _ in post.sent[:7]}) == 1
    assert sender.delivered >= 1


def test_jitter_multiplies_each_wait_within_its_bounds():
    clock = Clock()
    outbox, hook, rig, events = _outbox(clock, retry_initial=2.0, retry_max=100.0, jitter=0.25)
    seen = []

    def rng(lo, hi):
        seen.append((lo, hi))
        return hi

    sender = HookSender(clock, outbox.queues[0], outbox, FakePost(500, 500, 200), rng=rng)
    rig.feed(events[:40])
    sender.wake()
    clock.advance(0)
    assert sender._timer.getTime() - clock.seconds() == pytest.approx(2.5)
    clock.advance(2.5)
    assert sender._timer.getTime() - clock.seconds() == pytest.approx(5.0)
    assert seen == [(0.75, 1.25), (0.75, 1.25)]


@pytest.mark.parametrize("failure", [ConnectionRefusedError(), defer.TimeoutError(), 500, 502, 408, 429, 302])
def test_these_are_retried(failure):
    clock = Clock()
    outbox, hook, rig, events = _outbox(clock, jitter=0.0)
    post = FakePost(failure, 200)
    sender = HookSender(clock, outbox.queues[0], outbox, post)
    rig.feed(events[:40])
    n = len(outbox.queues[0].entries)
    sender.wake()
    clock.advance(0)
    assert sender.state == "waiting" and len(post.sent) == 1
    clock.advance(hook.retry_initial)
    assert post.sent[1][0] == post.sent[0][0]  # the same event again
    clock.advance(0)
    assert sender.delivered == n and not outbox.queues[0].entries


@pytest.mark.parametrize("code", [400, 401, 404, 410, 422])
def test_4xx_is_not_retried(code):
    clock = Clock()
    outbox, hook, rig, events = _outbox(clock)
    post = FakePost(code)
    sender = HookSender(clock, outbox.queues[0], outbox, post)
    rig.feed(events[:40])
    n = len(outbox.queues[0].entries)
    sender.wake()
    clock.advance(0)
    assert sender.refused == 1 and sender.delivered == n - 1
    assert len(post.sent) == n and len({b for b, _ in post.sent}) == n
    assert retryable(code) is False and retryable(200) is False and retryable(503) is True


def test_each_post_is_signed_over_its_exact_body():
    clock = Clock()
    outbox, hook, rig, events = _outbox(clock)
    post = FakePost()
    sender = HookSender(clock, outbox.queues[0], outbox, post)
    rig.feed(events)
    sender.wake()
    clock.advance(0)
    assert post.sent
    for body, headers in post.sent:
        heads = {k.decode().lower(): v[0].decode() for k, v in headers.items()}
        assert signature_ok(Request(body, heads, 200))
        assert heads["x-callcenter-event-id"] == json.loads(body)["id"]


def test_one_at_a_time_in_order():
    clock = Clock()
    outbox, hook, rig, events = _outbox(clock)
    rig.feed(events)
    queued = [e.id for e in outbox.queues[0].entries]
    post = FakePost(*([None] * len(queued)))
    sender = HookSender(clock, outbox.queues[0], outbox, post)
    sender.wake()
    clock.advance(0)
    for n in range(len(queued)):
        assert len(post.sent) == n + 1  # the next waits for this one's answer
        post.pending[n].callback(200)
    assert [json.loads(b)["id"] for b, _ in post.sent] == queued
    assert not outbox.queues[0].entries


def test_full_queue_drops_the_oldest_with_one_log_line_per_interval(logs):
    clock = Clock()
    outbox, hook, rig, events = _outbox(clock, max_queue=3)
    rig.feed(events)
    q = outbox.queues[0]
    assert len(q.entries) == 3
    assert q.dropped == outbox.derived - 3
    # The newest are kept.
    kept = [json.loads(e.body)["type"] for e in q.entries]
    assert kept[-1] == "agent.status"
    assert 1 <= len(logs.matching("queue full")) <= 5  # rate-limited (burst), not one per event
    assert q.dropped > 5


def test_stop_cancels_the_request_in_flight_and_keeps_the_event():
    clock = Clock()
    outbox, hook, rig, events = _outbox(clock)
    post = FakePost(None)
    sender = HookSender(clock, outbox.queues[0], outbox, post)
    rig.feed(events[:40])
    n = len(outbox.queues[0].entries)
    sender.wake()
    clock.advance(0)
    sender.stop()
    assert post.pending[0].called  # cancelled
    assert len(outbox.queues[0].entries) == n
    clock.advance(1000)
    assert len(post.sent) == 1 and not clock.getDelayedCalls()


# ---------------------------------------------------------------- configuration


def _opts(argv, environ=None):
    o = Options(environ or {})
    o.parseOptions(["--simulate", *argv])
    return o


def test_a_secret_on_the_command_line_is_refused():
    from twisted.python import usage

    with pytest.raises(usage.UsageError, match="command line"):
        _opts(["--webhook", "http://127.0.0.1:9/", "--webhook-secret", "s3cret"])


def test_webhook_urls_need_a_secret_from_a_file_or_the_environment(tmp_path):
    from twisted.python import usage

    with pytest.raises(usage.UsageError, match="needs a secret"):
        _opts(["--webhook", "http://127.0.0.1:9/"])
    o = _opts(["--webhook", "http://127.0.0.1:9/a", "--webhook", "https://crm.example/b"],
              {"CALLCENTER_WEBHOOK_SECRET": "from-env"})
    assert [h.secret for h in o["webhook-hooks"]] == [b"from-env", b"from-env"]
    secret = tmp_path / "s"
    secret.write_text("from-file\n")
    o = _opts(["--webhook", "http://127.0.0.1:9/a", "--webhook-secret-file", str(secret),
               "--webhook-events", "call.ended", "--webhook-timeout", "3"])
    (h,) = o["webhook-hooks"]
    assert h.secret == b"from-file" and h.events == {"call.ended"} and h.timeout == 3.0
    assert "from-file" not in repr(h)
    with pytest.raises(usage.UsageError, match="http"):
        _opts(["--webhook", "ftp://x/", "--webhook-secret-file", str(secret)])
    with pytest.raises(usage.UsageError, match="unknown event"):
        _opts(["--webhook", "http://x/", "--webhook-secret-file", str(secret), "--webhook-events", "call.rang"])
    o = _opts([], {"CALLCENTER_WEBHOOK": "http://127.0.0.1:9/a http://127.0.0.1:9/b",
                   "CALLCENTER_WEBHOOK_SECRET": "e"})
    assert len(o["webhook-hooks"]) == 2


def test_hooks_file_toml_and_json(tmp_path):
    secret = tmp_path / "crm.secret"
    secret.write_text("crm-secret\n")
    toml = tmp_path / "hooks.toml"
    toml.write_text(f'''
[[hook]]
name = "crm"
url = "https://crm.example/hooks/callcenter"
events = ["call.connected", "call.ended"]
secret_file = "{secret}"
timeout = 5
max_queue = 200

[[hook]]
url = "http://127.0.0.1:8099/wallboard"
secret_env = "WALLBOARD_SECRET"
''')
    defaults = HookConfig(name="", url="", secret=b"")
    crm, wall = load_hooks_file(str(toml), defaults, {"WALLBOARD_SECRET": "w"})
    assert (crm.name, crm.secret, crm.events, crm.timeout, crm.max_queue) == (
        "crm", b"crm-secret", {"call.connected", "call.ended"}, 5.0, 200)
    assert wall.secret == b"w" and wall.events == defaults.events and wall.name.startswith("h")
    js = tmp_path / "hooks.json"
    js.write_text(json.dumps({"hook": [{"url": "http://127.0.0.1:9/", "secret_env": "S"}]}))
    (h,) = load_hooks_file(str(js), defaults, {"S": "x"})
    assert h.secret == b"x"
    bad = [
        ({"hook": [{"url": "http://x/", "secret": "inline"}]}, "no secret in this file"),
        ({"hook": [{"url": "http://x/"}]}, "exactly one of secret_file"),
        ({"hook": [{"url": "http://x/", "secret_env": "NOPE"}]}, "not set"),
        ({"hook": [{"url": "http://x/", "secret_env": "S", "timeout": -1}]}, "greater than"),
        ({"hook": [{"url": "http://x/", "secret_env": "S", "max_queue": 1.5}]}, "whole number"),
        ({"hook": [{"url": "http://x/", "secret_env": "S", "colour": "red"}]}, "unknown key"),
        ({"hooks": []}, "list of"),
    ]
    for doc, message in bad:
        js.write_text(json.dumps(doc))
        with pytest.raises(ConfigError, match=message):
            load_hooks_file(str(js), defaults, {"S": "x"})
    js.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_hooks_file(str(js), defaults, {})


def test_metrics_count_per_hook():
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from callcenter.webhooks.metrics import WebhookCollector

    clock = Clock()
    outbox, hook, rig, events = _outbox(clock, max_queue=4, jitter=0.0)
    sender = HookSender(clock, outbox.queues[0], outbox, FakePost(503, 400))

    class Service:
        senders = [sender]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(WebhookCollector(Service()))
    rig.feed(events)
    sender.wake()
    clock.advance(0)
    clock.advance(hook.retry_initial)
    text = generate_latest(registry).decode()
    q = outbox.queues[0]
    assert 'callcenter_webhook_retries_total{hook="t"} 1.0' in text
    assert 'callcenter_webhook_refused_total{hook="t"} 1.0' in text
    assert f'callcenter_webhook_delivered_total{{hook="t"}} {float(sender.delivered)}' in text
    assert f'callcenter_webhook_dropped_total{{hook="t"}} {float(q.dropped)}' in text and q.dropped > 0
    assert 'callcenter_webhook_queued{hook="t"} 0.0' in text


def test_a_status_end_without_the_call_object_makes_no_event():
    from callcenter.core.changes import Changes
    from callcenter.report import Transition
    from callcenter.webhooks.events import EventDeriver

    rig = Rig(1000.0)
    ch = Changes(1000.0)
    ch.transitions.append(Transition("CALL", "5550001", "QUEUED", 990.0, 10, "q", "1.1"))
    assert EventDeriver(rig.center).derive(ch) == []
    ch.objects.append({"type": "CALL", "id": "1.1", "status": "ABANDON", "callerid": "5550001"})
    (event,) = EventDeriver(rig.center).derive(ch)
    assert json.loads(event.body)["call"]["outcome"] == "abandoned"
