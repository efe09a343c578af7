"""``--agents FILE``: agent id -> display name and team, for PBXs whose login
does not send the phone's caller-id name (or to override it).

Two formats, chosen by the file's extension:

- ``.csv``: one agent a line, ``id,name[,team]``; blank lines and lines
  starting with ``#`` are skipped, and so is a first line ``id,name,team``;
- ``.toml``: one table per agent id, ``[1001]`` with ``name = "…"`` and
  optionally ``team = "…"`` (also accepted under a top-level ``[agents]``).

Every line is checked before anything is used: a bad one makes the whole
file refused with one message naming each bad line (the service does not
start half-configured).  SIGHUP rereads it (``AgentsReloader``): a bad new
file keeps the directory in use and logs why.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from callcenter.files import FileReadError, read_bounded

log = Logger()

MAX_BYTES = 4 << 20
MAX_AGENTS = 100_000
MAX_ID = 128
MAX_NAME = 64
MAX_ERRORS_SHOWN = 10

Directory = dict[str, tuple[str, str]]


class AgentsFileError(ValueError):
    """The file cannot be used; str() names the file and every bad line."""


def load_agents(path: str) -> Directory:
    try:
        text = read_bounded(path, MAX_BYTES)
    except FileReadError as e:
        raise AgentsFileError(f"--agents {e}") from None
    if path.lower().endswith(".toml"):
        return parse_toml(text, path)
    return parse_csv(text, path)


def parse_csv(text: str, path: str = "agents.csv") -> Directory:
    out: Directory = {}
    errors: list[str] = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), 1):
        cells = [c.strip() for c in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if lineno == 1 and [c.lower() for c in cells[:2]] == ["id", "name"]:
            continue  # a header
        if len(cells) not in (2, 3):
            errors.append(f"line {lineno}: expected id,name[,team], got {len(cells)} fields")
            continue
        _add(out, errors, f"line {lineno}", *cells)
    return _done(out, errors, path)


def parse_toml(text: str, path: str = "agents.toml") -> Directory:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise AgentsFileError(f"--agents {path}: {e}") from None
    tables: Any = doc.get("agents", doc) if set(doc) <= {"agents"} else doc
    out: Directory = {}
    errors: list[str] = []
    if not isinstance(tables, dict):
        raise AgentsFileError(f"--agents {path}: [agents] must be a table of agent ids")
    for agentid, entry in tables.items():
        where = f"agent {agentid[:32]!r}"
        if not isinstance(entry, dict):
            errors.append(f"{where}: must be a table with name = \"…\"")
            continue
        unknown = set(entry) - {"name", "team"}
        if unknown:
            errors.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
            continue
        name, team = entry.get("name", ""), entry.get("team", "")
        if not isinstance(name, str) or not isinstance(team, str):
            errors.append(f"{where}: name and team must be strings")
            continue
        _add(out, errors, where, agentid, name.strip(), team.strip())
    return _done(out, errors, path)


def _add(out: Directory, errors: list[str], where: str, agentid: str, name: str, team: str = "") -> None:
    if not agentid or len(agentid) > MAX_ID or not agentid.isprintable():
        errors.append(f"{where}: agent id {agentid[:32]!r} must be 1 to {MAX_ID} printable characters")
    elif not name or len(name) > MAX_NAME or not name.isprintable():
        errors.append(f"{where}: name {name[:32]!r} must be 1 to {MAX_NAME} printable characters")
    elif len(team) > MAX_NAME or not team.isprintable():
        errors.append(f"{where}: team {team[:32]!r} must be at most {MAX_NAME} printable characters")
    elif agentid in out:
        errors.append(f"{where}: agent id {agentid!r} is given twice")
    elif len(out) >= MAX_AGENTS:
        errors.append(f"{where}: more than {MAX_AGENTS} agents")
    else:
        out[agentid] = (name, team)


def _done(out: Directory, errors: list[str], path: str) -> Directory:
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise AgentsFileError(f"--agents {path}: {len(errors)} bad line(s): {shown}{more}")
    return out


# Runs ``load_agents(path)`` off the reactor thread (the service: the reactor's
# thread pool; tests: at once) and fires with its result or its error.
RunBlocking = Callable[[Callable[[str], Directory], str], "defer.Deferred[Directory]"]


class AgentsReloader:
    """SIGHUP for ``--agents``: reread the file, then hand the whole new
    directory to ``apply`` (``Callcenter.set_agent_directory``) on the reactor.

    A file that cannot be used changes nothing: the directory loaded before
    stays, and one error line names the file and what is wrong with it.  A
    SIGHUP while a reread runs makes one more reread after it (the file may
    have changed again), never two at once.
    """

    def __init__(self, path: str, apply: Callable[[Directory], None], loaded: int,
                 run_blocking: RunBlocking) -> None:
        self.path = path
        self._apply = apply
        self._run_blocking = run_blocking
        self.loaded = loaded  # agents in the directory in use (for the log lines)
        self._running: defer.Deferred[None] | None = None
        self._again = False

    def reload(self) -> defer.Deferred[None]:
        if self._running is not None:
            self._again = True
            return self._running
        self._running = defer.Deferred()
        self._next()
        return self._running

    def _next(self) -> None:
        self._again = False
        d = defer.maybeDeferred(self._run_blocking, load_agents, self.path)
        d.addCallback(self._loaded)
        d.addErrback(self._failed)  # a bad file, or (a bug) ``apply`` failing
        d.addBoth(self._done)

    def _loaded(self, directory: Directory) -> None:
        self._apply(directory)
        self.loaded = len(directory)
        log.info("--agents {path} reloaded: {n} agents", path=self.path, n=len(directory))

    def _failed(self, failure: Any) -> None:
        if failure.check(AgentsFileError):
            log.error("--agents file not reloaded, keeping the {n} agents loaded: {err}",
                      n=self.loaded, err=failure.value)
        else:
            log.failure("--agents file not reloaded, keeping the {n} agents loaded",
                        failure, n=self.loaded)

    def _done(self, _: Any) -> None:
        if self._again:
            self._next()
            return
        running, self._running = self._running, None
        if running is not None:
            running.callback(None)
