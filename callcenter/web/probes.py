"""``GET /healthz`` and ``GET /readyz``: for systemd, load balancers and monitoring.

Both are unauthenticated (no ``Guarded`` around them, see ``site.py``) and
exempt from the Host check, because a probe names the service by address;
so they say nothing but up/down and a reason from a fixed vocabulary
(``callcenter.health.PBX_REASONS``): no host names, users, figures or versions.

- ``/healthz``: 200 while the process runs and its reactor turns.
- ``/readyz``: 200 only when the AMI session is logged in and reconciled and
  this web port serves (it answers, so it does); else 503, the body naming
  what is not ready.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web import resource, server

PROBE_PATHS = (b"/healthz", b"/readyz")


def _json(request: server.Request, code: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


class Healthz(resource.Resource):
    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        return _json(request, 200, {"alive": True})

    render_HEAD = render_GET


class Readyz(resource.Resource):
    isLeaf = True

    def __init__(self, health: Any) -> None:
        super().__init__()
        self._health = health

    def render_GET(self, request: server.Request) -> bytes:
        problem = self._health.pbx_problem()
        checks = {"pbx": problem or "ok", "web": "ok"}
        if problem:
            return _json(request, 503, {"ready": False, "not_ready": ["pbx"], "checks": checks})
        return _json(request, 200, {"ready": True, "not_ready": [], "checks": checks})

    render_HEAD = render_GET
