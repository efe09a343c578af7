"""The users file: who may log in, with which role, password hash or token hash.

One JSON object per line (``#`` comments and blank lines allowed), so an
Ansible template or ``callcenter-users`` can write it and a person can read
it::

    {"name": "alice", "role": "supervisor", "queues": ["q-sales"], "password": "$argon2id$..."}
    {"name": "tv-hall", "role": "wallboard", "token": "sha256:9f86d0..."}

Passwords are stored only as argon2id hashes (``argon2-cffi``); wallboard
tokens are 256-bit random strings, so a SHA-256 of them is enough (nothing to
brute-force) and lets the service find a token's user in one lookup.  This
module never sees a plain password it stores; it never writes one either.
Writes are atomic (temporary file + rename), so a reader never sees half a
file and a refused change leaves the file as it was.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from callcenter.files import FileReadError, read_bounded

ROLES = ("admin", "supervisor", "agent", "wallboard")
NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
QUEUE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
AGENTID = re.compile(r"^[^\x00-\x1f\x7f:;]{1,128}$")
TOKEN_BYTES = 32  # 256 bits: a wallboard token cannot be guessed
MAX_PASSWORD = 1024  # argon2 takes any length; bound what a login form may make us hash
MAX_USERS_FILE = 4 << 20  # bytes; a users file is small, refuse to parse a huge one

# argon2-cffi's defaults are RFC 9106's "second recommended" profile
# (argon2id, t=3, m=64 MiB, p=4): ~50 ms per verification on one core.
_hasher = PasswordHasher()


class UsersFileError(ValueError):
    """The users file or a change to it is wrong; str() is one clear line."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    queues: frozenset[str] | None = None  # supervisor/wallboard scope; None = every queue
    agent: str | None = None  # the agent role's agent id
    password: str | None = None  # argon2id hash
    token: str | None = None  # "sha256:<hex>" of the wallboard token

    def credential_id(self, kind: str) -> str:
        """A short fingerprint of the password hash or token a session was opened
        with: when either changes (passwd, token revoked) the session ends."""
        secret = self.password if kind == "password" else self.token
        return hashlib.sha256((secret or "").encode()).hexdigest()[:16] if secret else ""

    def to_line(self) -> str:
        d: dict[str, Any] = {"name": self.name, "role": self.role}
        if self.queues is not None:
            d["queues"] = sorted(self.queues)
        if self.agent is not None:
            d["agent"] = self.agent
        if self.password is not None:
            d["password"] = self.password
        if self.token is not None:
            d["token"] = self.token
        return json.dumps(d, ensure_ascii=False, separators=(", ", ": "))


def make_user(
    name: str,
    role: str,
    *,
    queues: Iterable[str] | None = None,
    agent: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> User:
    """A checked User; UsersFileError says what is wrong."""
    if not isinstance(name, str) or not NAME.match(name):
        raise UsersFileError(f"bad user name {name!r}: 1-64 of A-Z a-z 0-9 _ . @ + -")
    if role not in ROLES:
        raise UsersFileError(f"unknown role {role!r} for {name}: one of {', '.join(ROLES)}")
    scope = None
    if queues is not None:
        scope = frozenset(queues)
        if role not in ("supervisor", "wallboard"):
            raise UsersFileError(f"{name}: only supervisors and wallboards have queues")
        bad = [q for q in scope if not isinstance(q, str) or not QUEUE.match(q)]
        if bad or not scope:
            raise UsersFileError(f"{name}: bad queue list {sorted(map(str, bad or scope))!r}")
    if role == "agent":
        if not agent:
            raise UsersFileError(f"{name}: the agent role needs --agent ID")
        if not isinstance(agent, str) or not AGENTID.match(agent):
            raise UsersFileError(f"{name}: bad agent id {agent!r}")
    elif agent is not None:
        raise UsersFileError(f"{name}: only the agent role has an agent id")
    if password is not None and not (isinstance(password, str) and password.startswith("$argon2id$")):
        raise UsersFileError(f"{name}: password must be an argon2id hash")
    if token is not None:
        if role != "wallboard":
            raise UsersFileError(f"{name}: only wallboards have tokens")
        if not (isinstance(token, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", token)):
            raise UsersFileError(f"{name}: token must be sha256:<64 hex digits>")
    return User(name, role, scope, agent, password, token)


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    if not password:
        raise UsersFileError("empty password")
    if len(password) > MAX_PASSWORD:
        raise UsersFileError(f"password longer than {MAX_PASSWORD} characters")
    return (hasher or _hasher).hash(password)


def verify_password(hashed: str, password: str) -> bool:
    """Slow on purpose (argon2id): call it off the reactor thread."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Users:
    """The parsed file: users by name, and wallboard tokens by hash."""

    by_name: Mapping[str, User] = field(default_factory=dict)

    def get(self, name: str) -> User | None:
        return self.by_name.get(name)

    def by_token(self, token: str) -> User | None:
        wanted = token_hash(token)
        for user in self.by_name.values():
            if user.token is not None and hmac.compare_digest(user.token, wanted):
                return user
        return None

    def __len__(self) -> int:
        return len(self.by_name)

    def with_user(self, user: User) -> Users:
        return Users({**self.by_name, user.name: user})

    def without(self, name: str) -> Users:
        return Users({k: v for k, v in self.by_name.items() if k != name})

    def replace_user(self, name: str, **changes: Any) -> Users:
        return self.with_user(replace(self.by_name[name], **changes))


def parse(text: str, path: str = "users file") -> Users:
    users: dict[str, User] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict):
                raise UsersFileError("not a JSON object")
            unknown = set(d) - {"name", "role", "queues", "agent", "password", "token"}
            if unknown:
                raise UsersFileError(f"unknown key(s) {', '.join(sorted(unknown))}")
            queues = d.get("queues")
            if queues is not None and not isinstance(queues, list):
                raise UsersFileError("queues must be a list")
            user = make_user(
                d.get("name"),  # type: ignore[arg-type]
                d.get("role"),  # type: ignore[arg-type]
                queues=queues,
                agent=d.get("agent"),
                password=d.get("password"),
                token=d.get("token"),
            )
        except (UsersFileError, ValueError) as e:
            raise UsersFileError(f"{path}:{n}: {e}") from None
        if user.name in users:
            raise UsersFileError(f"{path}:{n}: user {user.name} is listed twice")
        users[user.name] = user
    return Users(users)


def load(path: str) -> Users:
    """Read and check the whole file; UsersFileError (one line) if it cannot be used."""
    try:
        text = read_bounded(path, MAX_USERS_FILE)
    except FileReadError as e:
        raise UsersFileError(f"--users {e}") from None
    return parse(text, path)


def save(path: str, users: Users) -> None:
    """Write atomically with mode 0640: a temporary file in the same directory, then rename."""
    text = "# callcenter users: managed by callcenter-users (hashes only, never passwords)\n"
    text += "".join(u.to_line() + "\n" for u in sorted(users.by_name.values(), key=lambda u: u.name))
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".users.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            st = os.stat(path)
            os.chmod(tmp, st.st_mode & 0o777)
            if hasattr(os, "chown"):
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except PermissionError:
                    pass  # not root: keep our own ownership
        except FileNotFoundError:
            os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
