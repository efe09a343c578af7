"""An access-controlled dashboard for tests: the real Callcenter behind a fake
PBX (tests/web's rig), a users file, Redis sessions in a throw-away
redis-server, built from twistd's own options by ``make_access``; HTTP
helpers that log in the way the login page does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from web.support import HandshakeRefused, Rig, start_rig

from callcenter.auth import users as users_mod
from callcenter.options import Options
from callcenter.web.access import COOKIE
from callcenter.web.wiring import make_access

# Cheap argon2id parameters so the tests spend no seconds hashing; the
# service verifies with whatever parameters a hash names.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery staple"


def user_line(name: str, role: str, password: str | None = PASSWORD, **kw: Any) -> users_mod.User:
    hashed = users_mod.hash_password(password, FAST) if password else None
    return users_mod.make_user(name, role, password=hashed, **kw)


def write_users(path: str, *users: users_mod.User) -> None:
    users_mod.save(path, users_mod.Users({u.name: u for u in users}))


def options(tmp_path: Any, redis_url: str, users_path: str, *extra: str) -> Options:
    opts = Options(environ={})
    opts.parseOptions([
        "--simulate", "--report", str(tmp_path / "report.csv"), "--redis", redis_url,
        "--users", users_path, "--audit", str(tmp_path / "audit.log"), "--users-watch", "0",
        "--session-recheck", "0", *extra,
    ])
    return opts


@dataclass
class AuthRig:
    rig: Rig
    parts: Any
    clock: Clock

    @property
    def url(self) -> str:
        return self.rig.url

    async def request(self, method: str, path: str, body: Any = None, cookie: str | None = None,
                      origin: str | None = "own", host: str | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = Headers()
        if origin == "own":
            origin = self.rig.origin
        if origin:
            headers.addRawHeader(b"Origin", origin.encode())
        if cookie:
            headers.addRawHeader(b"Cookie", f"{COOKIE}={cookie}".encode())
        if host:
            headers.addRawHeader(b"Host", host.encode())
        producer = None
        if body is not None:
            from io import BytesIO

            from twisted.web.client import FileBodyProducer

            headers.addRawHeader(b"Content-Type", b"application/json")
            producer = FileBodyProducer(BytesIO(json.dumps(body).encode()))
        response = await Agent(reactor).request(method.encode(), (self.url + path).encode(), headers, producer)
        data = await readBody(response)
        out = {k.decode().lower(): v[-1].decode() for k, v in response.headers.getAllRawHeaders()}
        return response.code, out, data

    async def login(self, name: str, password: str = PASSWORD) -> tuple[int, str | None, dict]:
        code, headers, body = await self.request("POST", "login", {"user": name, "password": password})
        cookie = None
        if "set-cookie" in headers:
            cookie = headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
        return code, cookie, json.loads(body or b"{}")

    async def client(self, cookie: str | None):
        return await self.rig.client(headers={"Cookie": f"{COOKIE}={cookie}"} if cookie else None)

    async def stop(self) -> None:
        await self.rig.stop()
        self.parts.stop()


async def start_auth_rig(tmp_path: Any, redis_url: str, users_path: str, *extra: str,
                         **site_kw: Any) -> AuthRig:
    clock = Clock()
    clock.advance(1_800_000_000)  # sessions record login times: a plausible "now"
    opts = options(tmp_path, redis_url, users_path, *extra)
    parts = make_access(opts, reactor, clock)
    parts.start()
    rig = await start_rig(access=parts.access, screen_pop=opts["screen-pop"], **site_kw)
    return AuthRig(rig, parts, clock)


__all__ = ["AuthRig", "HandshakeRefused", "PASSWORD", "start_auth_rig", "user_line", "write_users"]
