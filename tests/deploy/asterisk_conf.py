"""A small reader of Asterisk's configuration file format, enough for the tests.

Handles sections (``[name]``, templates ``[name](!)``, inheritance
``[name](tmpl)``), ``key=value`` / ``key => value`` lines, ``;`` comments
(``\\;`` is a literal semicolon) and ``#include``/``#tryinclude`` lines (kept,
with the section they appear in, and optionally followed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_SECTION = re.compile(r"^\[([^\]]+)\](?:\(([^)]*)\))?\s*$")
_INCLUDE = re.compile(r'^#(try)?include\s+"?([^"\s]+)"?\s*$')


@dataclass
class Section:
    name: str
    template: bool = False
    parents: list[str] = field(default_factory=list)
    items: list[tuple[str, str]] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        values = self.getall(key)
        return values[-1] if values else default

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self.items if k == key]


def strip_comment(line: str) -> str:
    out = []
    i = 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if line[i] == ";":
            break
        out.append(line[i])
        i += 1
    return "".join(out).strip()


def parse(path: Path, follow_includes: bool = False) -> list[Section]:
    """Sections in file order; a nameless section holds lines before the first."""
    sections = [Section(name="")]
    _parse_into(path, sections, follow_includes)
    return sections


def _parse_into(path: Path, sections: list[Section], follow: bool) -> None:
    for raw in path.read_text().splitlines():
        line = strip_comment(raw)
        if not line:
            continue
        m = _INCLUDE.match(line)
        if m:
            sections[-1].includes.append(m.group(2))
            target = path.parent / m.group(2)
            if follow and (target.is_file() or not m.group(1)):
                _parse_into(target, sections, follow)  # continues the current section
            continue
        m = _SECTION.match(line)
        if m:
            opts = [o.strip() for o in (m.group(2) or "").split(",") if o.strip()]
            sections.append(
                Section(name=m.group(1).strip(), template="!" in opts,
                        parents=[o for o in opts if o != "!"])
            )
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: cannot parse line {raw!r}")
        if value.startswith(">"):  # "exten => ..." is "exten = ..."
            value = value[1:]
        sections[-1].items.append((key.strip().lower(), value.strip()))


def section(sections: list[Section], name: str) -> Section:
    found = [s for s in sections if s.name == name]
    if len(found) != 1:
        raise KeyError(f"expected exactly one [{name}], found {len(found)}")
    return found[0]


# --- dialplan -------------------------------------------------------------------


@dataclass
class Step:
    exten: str
    priority: str
    label: str | None
    app: str
    args: str


_APP = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.S)


def dialplan(sections: list[Section]) -> dict[str, list[Step]]:
    """Context name -> its steps in file order (``same =>`` resolved)."""
    contexts: dict[str, list[Step]] = {}
    for sec in sections:
        if sec.name in ("", "general", "globals"):
            continue
        steps: list[Step] = []
        current = None
        for key, value in sec.items:
            if key == "exten":
                current, rest = value.split(",", 1)
                current = current.strip()
            elif key == "same":
                if current is None:
                    raise ValueError(f"[{sec.name}]: 'same' before any 'exten'")
                rest = value
            else:
                continue
            priority, app_call = rest.split(",", 1)
            priority = priority.strip()
            label = None
            m = re.fullmatch(r"([^()]+)\(([^)]+)\)", priority)
            if m:
                priority, label = m.group(1), m.group(2)
            m = _APP.match(app_call)
            if not m:
                raise ValueError(f"[{sec.name}]: cannot parse application {app_call!r}")
            steps.append(Step(current, priority, label, m.group(1), m.group(2) or ""))
        contexts[sec.name] = steps
    return contexts


def split_args(args: str) -> list[str]:
    """Split application arguments on top-level commas (not inside ${...} or (...))."""
    out, depth, cur = [], 0, []
    for ch in args:
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


# -- the asterisk role's generated files -------------------------------------

ROLE = Path(__file__).resolve().parents[2] / "ansible" / "roles" / "asterisk"


def role_defaults() -> dict:
    import yaml

    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def render_role_template(name: str, **variables: object) -> str:
    """A template of the asterisk role rendered with its defaults and ``variables``
    (plain Jinja2, as Ansible renders these: they use no Ansible-only filters)."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string((ROLE / "templates" / name).read_text())
    values = {**role_defaults(), "ansible_managed": "Ansible managed", "asterisk_phones": [], **variables}
    return template.render(**values)
