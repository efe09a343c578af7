"""The signature examples of docs/integrations.md verify what the service sends.

The Python and the JavaScript snippet are taken from the document as they are
written, run (Python here, JavaScript under node) on a body and header the
service really POSTed to a loopback receiver, and must refuse a changed body.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import pytest_twisted
from store.support import Rig, trace_events, wait_for
from twisted.internet import reactor

from callcenter.webhooks.config import HookConfig
from callcenter.webhooks.service import WebhookService

from .support import SECRET, Receiver

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def _snippet(lang: str) -> str:
    section = DOC.read_text().split("### Verifying the signature", 1)[1]
    m = re.search(rf"```{lang}\n(.*?)```", section, re.S)
    assert m, f"no {lang} example in {DOC}"
    return m.group(1)


async def _one_real_request():
    """A request as the service sends it (no Redis needed: the outbox's memory side)."""
    receiver = Receiver()
    port = receiver.listen()
    events = trace_events("abandon")
    rig = Rig(events[0][0])
    hook = HookConfig(name="doc", url=f"http://127.0.0.1:{port.getHost().port}/", secret=SECRET)
    webhooks = WebhookService(reactor, rig.center, [hook], "callcenter:")
    rig.center.subscribe(webhooks.outbox.on_changes)
    webhooks.outbox.restored()
    webhooks.startService()
    try:
        rig.feed(events)
        rig.clock.advance(10)
        await wait_for(lambda: any(r.doc["type"] == "call.ended" for r in receiver.requests))
    finally:
        await webhooks.stopService()
        await port.stopListening()
    return next(r for r in receiver.requests if r.doc["type"] == "call.ended")


@pytest_twisted.ensureDeferred
async def test_the_python_example_verifies_a_real_body():
    req = await _one_real_request()
    scope: dict = {}
    exec(compile(_snippet("python"), str(DOC), "exec"), scope)
    header = req.headers["x-callcenter-signature"]
    assert scope["verify"](req.body, header, SECRET) is True
    assert scope["verify"](req.body.replace(b'"abandoned"', b'"answered"'), header, SECRET) is False
    assert scope["verify"](req.body, header, b"another secret") is False


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest_twisted.ensureDeferred
async def test_the_javascript_example_verifies_a_real_body(tmp_path):
    req = await _one_real_request()
    (tmp_path / "body.json").write_bytes(req.body)
    (tmp_path / "tampered.json").write_bytes(req.body.replace(b'"abandoned"', b'"answered"'))
    script = tmp_path / "verify.js"
    script.write_text(_snippet("javascript") + """
const fs = require("fs");
const [, , file, header, secret] = process.argv;
console.log(verify(fs.readFileSync(file), header, secret) ? "valid" : "invalid");
""")
    header = req.headers["x-callcenter-signature"]

    def run(name: str, secret: bytes = SECRET) -> str:
        out = subprocess.run(
            ["node", str(script), str(tmp_path / name), header, secret.decode()],
            capture_output=True, text=True, timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert run("body.json") == "valid"
    assert run("tampered.json") == "invalid"
    assert run("body.json", b"another secret") == "invalid"
