"""Which hooks to call: ``--webhook URL`` options or a ``--webhooks`` file (TOML or JSON).

Secrets come from a file or an environment variable, never from the command
line or the hooks file itself (which is often world-readable); a hook
without a secret is refused, since receivers must be able to verify.  Every
value is checked here, so a bad one stops the start with one clear line
(``ConfigError``), before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from callcenter.files import FileReadError, read_bounded
from callcenter.webhooks.events import EVENT_TYPES

#: Defaults of the per-hook bounds (each has an option and a hooks-file key).
TIMEOUT = 10.0  # seconds for one POST, answer included
MAX_QUEUE = 1000  # undelivered events kept per hook; beyond, the oldest is dropped
RETRY_INITIAL = 1.0  # seconds before the first retry; doubles per failure
RETRY_MAX = 300.0  # the longest wait between two tries
JITTER = 0.2  # each wait is multiplied by a random factor in [1-j, 1+j]
MAX_SECRET = 4096  # bytes
MAX_SECRET_FILE = 8 << 10  # bytes of a secret file: the secret and white space around it
MAX_HOOKS = 32
MAX_FILE = 64 * 1024  # bytes of a hooks file

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_KEYS = {"name", "url", "events", "secret_file", "secret_env", "timeout", "max_queue",
         "retry_initial", "retry_max", "jitter"}


class ConfigError(ValueError):
    """A hook setting that cannot work: one line for the admin."""


@dataclass(frozen=True)
class HookConfig:
    name: str  # names the hook's Redis outbox: stable across restarts
    url: str
    secret: bytes
    events: frozenset[str] = frozenset(EVENT_TYPES)
    timeout: float = TIMEOUT
    max_queue: int = MAX_QUEUE
    retry_initial: float = RETRY_INITIAL
    retry_max: float = RETRY_MAX
    jitter: float = JITTER

    def __repr__(self) -> str:  # never the secret, and the URL only up to its path
        return f"HookConfig(name={self.name!r}, url={safe_url(self.url)!r})"


def safe_url(url: str) -> str:
    """The URL for log lines: no user info, query or fragment (they may hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def check_url(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {safe_url(url)!r} is not an http:// or https:// URL")
    if any(c.isspace() for c in url) or not url.isprintable():
        raise ConfigError(f"{where}: the URL has spaces or control characters")
    return url


def default_name(url: str) -> str:
    return "h" + hashlib.sha256(url.encode()).hexdigest()[:12]


def parse_events(value: Any, where: str) -> frozenset[str]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise ConfigError(f"{where}: events must be a list of event names")
    if items in (["all"], ["*"]):
        return frozenset(EVENT_TYPES)
    unknown = [v for v in items if v not in EVENT_TYPES]
    if unknown or not items:
        raise ConfigError(
            f"{where}: unknown event {unknown[0] if unknown else ''!r} "
            f"(known: {', '.join(EVENT_TYPES)}, or all)"
        )
    return frozenset(items)


def read_secret_file(path: str, where: str) -> bytes:
    try:
        secret = read_bounded(path, MAX_SECRET_FILE).strip().encode("utf-8")
    except FileReadError as e:
        raise ConfigError(f"{where} {e}") from None
    return _check_secret(secret, f"{where} {path}")


def secret_from_env(name: str, environ: Mapping[str, str], where: str) -> bytes:
    if not _ENV.match(name):
        raise ConfigError(f"{where}: {name!r} is not an environment variable name")
    value = environ.get(name)
    if value is None:
        raise ConfigError(f"{where}: environment variable {name} is not set")
    return _check_secret(value.strip().encode(), f"{where}: environment variable {name}")


def _check_secret(secret: bytes, where: str) -> bytes:
    if not secret:
        raise ConfigError(f"{where} is empty")
    if len(secret) > MAX_SECRET:
        raise ConfigError(f"{where}: a secret of over {MAX_SECRET} bytes")
    return secret


def _number(value: Any, where: str, kind: type, minimum: float, allow_zero: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} must be a number, not {value!r}")
    if kind is int and not float(value).is_integer():
        raise ConfigError(f"{where} must be a whole number, not {value!r}")
    ok = value >= minimum if allow_zero else value > minimum
    if not ok or value != value or value == float("inf"):
        raise ConfigError(f"{where} must be {'at least' if allow_zero else 'greater than'} {minimum:g}, not {value!r}")
    return kind(value)


def load_hooks_file(path: str, defaults: HookConfig, environ: Mapping[str, str] | None = None) -> list[HookConfig]:
    """The hooks of a ``--webhooks`` file: ``[[hook]]`` tables (TOML) or
    ``{"hook": [...]}`` (JSON, chosen by a ``.json`` name)."""
    environ = os.environ if environ is None else environ
    try:
        text = read_bounded(path, MAX_FILE)
    except FileReadError as e:
        raise ConfigError(f"--webhooks {e}") from None
    try:
        doc = json.loads(text) if path.endswith(".json") else tomllib.loads(text)
    except ValueError as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"--webhooks {path}: not valid {'JSON' if path.endswith('.json') else 'TOML'} ({e})") from None
    if not isinstance(doc, dict) or set(doc) - {"hook"} or not isinstance(doc.get("hook"), list):
        raise ConfigError(f"--webhooks {path}: expected a list of [[hook]] tables (and nothing else)")
    hooks = [_hook(item, f"--webhooks {path}: hook {i + 1}", defaults, environ)
             for i, item in enumerate(doc["hook"])]
    if not hooks:
        raise ConfigError(f"--webhooks {path}: no hook")
    return hooks


def _hook(item: Any, where: str, d: HookConfig, environ: Mapping[str, str]) -> HookConfig:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: not a table")
    if "secret" in item:
        raise ConfigError(f"{where}: no secret in this file; give secret_file or secret_env")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}")
    url = item.get("url")
    if not isinstance(url, str):
        raise ConfigError(f"{where}: url is missing")
    check_url(url, where)
    name = item.get("name", default_name(url))
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: name must be 1-64 letters, digits, '_', '.' or '-'")
    where = f"{where} ({name})"
    if ("secret_file" in item) == ("secret_env" in item):
        raise ConfigError(f"{where}: give exactly one of secret_file and secret_env")
    if "secret_file" in item:
        if not isinstance(item["secret_file"], str):
            raise ConfigError(f"{where}: secret_file must be a path")
        secret = read_secret_file(item["secret_file"], f"{where}: secret_file")
    else:
        if not isinstance(item["secret_env"], str):
            raise ConfigError(f"{where}: secret_env must be a variable name")
        secret = secret_from_env(item["secret_env"], environ, where)
    return HookConfig(
        name=name,
        url=url,
        secret=secret,
        events=parse_events(item["events"], where) if "events" in item else d.events,
        timeout=_number(item.get("timeout", d.timeout), f"{where}: timeout", float, 0),
        max_queue=_number(item.get("max_queue", d.max_queue), f"{where}: max_queue", int, 0),
        retry_initial=_number(item.get("retry_initial", d.retry_initial), f"{where}: retry_initial", float, 0),
        retry_max=_number(item.get("retry_max", d.retry_max), f"{where}: retry_max", float, 0),
        jitter=_check_jitter(item.get("jitter", d.jitter), f"{where}: jitter"),
    )


def _check_jitter(value: Any, where: str) -> float:
    j = _number(value, where, float, 0, allow_zero=True)
    if j >= 1:
        raise ConfigError(f"{where} must be below 1, not {value!r}")
    return j


def check_unique(hooks: list[HookConfig]) -> list[HookConfig]:
    if len(hooks) > MAX_HOOKS:
        raise ConfigError(f"at most {MAX_HOOKS} webhooks")
    seen: set[str] = set()
    for h in hooks:
        if h.name in seen:
            raise ConfigError(f"two webhooks named {h.name!r} (or the same URL twice)")
        seen.add(h.name)
    return hooks


__all__ = [
    "ConfigError",
    "HookConfig",
    "JITTER",
    "MAX_QUEUE",
    "RETRY_INITIAL",
    "RETRY_MAX",
    "TIMEOUT",
    "check_unique",
    "check_url",
    "default_name",
    "load_hooks_file",
    "parse_events",
    "read_secret_file",
    "safe_url",
    "secret_from_env",
]
