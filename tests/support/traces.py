"""The recorded Asterisk traces (../shared/ami-traces beside the repository) as raw bytes."""

from __future__ import annotations

import json
from pathlib import Path


def _find_traces() -> Path:
    # Beside the repository (<repo>/../shared); a git worktree of it may sit one level deeper.
    for parent in Path(__file__).resolve().parents[2:]:
        candidate = parent / "shared" / "ami-traces"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[3] / "shared" / "ami-traces"


TRACES = _find_traces()


def trace_bytes(name: str) -> bytes:
    return (TRACES / name).read_bytes()


def trace_index(name: str) -> list[dict]:
    with open(TRACES / f"{name}.idx.jsonl") as f:
        return [json.loads(line) for line in f]


def trace_messages(name: str, action_id: str | None = None) -> bytes:
    """The raw bytes of a trace's messages (all but the banner, or those of one ActionID)."""
    data = trace_bytes(name)
    out = []
    for row in trace_index(name):
        if row["kind"] == "Banner":
            continue
        if action_id is None or row["ActionID"] == action_id:
            out.append(data[row["off"] : row["off"] + row["len"]])
    return b"".join(out)
