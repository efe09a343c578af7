"""The queue_log reader: real files in a temp dir, each trouble a real file does.

Expected entries come from the traces' own ``.queue_log`` (Asterisk wrote
them), never from the reader itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.traces import TRACES

from callcenter.ami.events import CallerAnnounced
from callcenter.queuelog.entries import Invalid, parse_line
from callcenter.queuelog.follow import Position, QueueLogFollower
from callcenter.queuelog.mapping import to_events

SAMPLE = (TRACES / "queue-entries" / "transfer-small.queue_log").read_bytes()
SAMPLE_LINES = SAMPLE.splitlines(keepends=True)


def drain(f: QueueLogFollower) -> list[bytes]:
    """Everything readable now, as the raw lines' (time, callid, verb) fields."""
    got = []
    while True:
        lines = f.read()
        if not lines:
            return got
        for line in lines:
            if line.entry is not None:
                e = line.entry
                got.append(b"|".join(x.encode() for x in (str(e.ts), e.callid, e.queue, e.agent, e.verb, *e.data)))
            f.consume(line.end)


def raw(lines: list[bytes]) -> list[bytes]:
    return [x.rstrip(b"\n") for x in lines]


def test_every_trace_line_parses_into_its_fields() -> None:
    for path in [*TRACES.glob("*.queue_log"), *TRACES.glob("queue-entries/*.queue_log")]:
        for line in path.read_bytes().splitlines():
            e = parse_line(line)
            fields = line.decode().split("|")
            assert (str(e.ts), e.callid, e.queue, e.agent, e.verb) == tuple(fields[:5])
            assert list(e.data) == fields[5:]


@pytest.mark.parametrize(
    "junk",
    [b"", b"hello", b"x|y|z|w|CONNECT", b"17956|1.2|q|1001|connect|1", b"1795665080|\xff|q|a|CONNECT",
     b"1795665080|1.2|q|1001|CONNECT|" + b"9" * 300, b"1795665080||q|1001|CONNECT", b"-1|1.2|q|a|PAUSE"],
)
def test_garbage_is_invalid(junk: bytes) -> None:
    with pytest.raises(Invalid):
        parse_line(junk)


def test_the_dialplans_caller_line_parses_into_the_callers_ivr_start() -> None:
    """What ``QueueLog(NONE,${UNIQUEID},NONE,CALLER,${CALLERID(num)})`` writes
    (app_queue.c ``ql_exec``: ``ast_queue_log`` with the fifth argument as is),
    and an empty caller number."""
    e = parse_line(b"1795665079|1795665079.5|NONE|NONE|CALLER|5550001")
    assert (e.ts, e.callid, e.queue, e.agent, e.verb, e.data) == (
        1795665079, "1795665079.5", "NONE", "NONE", "CALLER", ("5550001",))
    assert to_events(e, None) == ([CallerAnnounced("1795665079.5", "5550001", "", 1795665079.0)], False)
    bare = parse_line(b"1795665079|1795665079.5|NONE|NONE|CALLER|")
    assert to_events(bare, None)[0][0].callerid == ""


def test_follows_growth_and_a_partial_last_line(tmp_path: Path) -> None:
    p = tmp_path / "queue_log"
    p.write_bytes(b"".join(SAMPLE_LINES[:5]) + SAMPLE_LINES[5][:17])
    f = QueueLogFollower(str(p), chunk=8192)
    assert drain(f) == raw(SAMPLE_LINES[:5])
    assert drain(f) == []  # the torn line waits for its newline
    with p.open("ab") as out:
        out.write(SAMPLE_LINES[5][17:] + SAMPLE_LINES[6])
    assert drain(f) == raw(SAMPLE_LINES[5:7])
    assert f.position.offset == len(b"".join(SAMPLE_LINES[:7]))


def test_reads_in_bounded_chunks(tmp_path: Path) -> None:
    p = tmp_path / "queue_log"
    p.write_bytes(SAMPLE)
    f = QueueLogFollower(str(p), chunk=4097, max_line=4096)
    first = f.read()
    assert sum(1 for x in first if x.entry) == len(SAMPLE_LINES)  # the whole sample fits
    f = QueueLogFollower(str(p), chunk=200, max_line=100)
    batch = f.read()
    assert batch and batch[-1].end <= 200
    assert drain(f) == raw(SAMPLE_LINES)


def test_rotation_reads_the_old_file_to_its_end_then_the_new_one(tmp_path: Path) -> None:
    p = tmp_path / "queue_log"
    p.write_bytes(b"".join(SAMPLE_LINES[:10]))
    f = QueueLogFollower(str(p), chunk=8192)
    assert drain(f) == raw(SAMPLE_LINES[:10])
    with p.open("ab") as out:
        out.write(b"".join(SAMPLE_LINES[10:14]))  # written just before the rotation
    os.rename(p, tmp_path / "queue_log.1")
    assert drain(f) == raw(SAMPLE_LINES[10:14])  # moved, not yet recreated
    p.write_bytes(b"".join(SAMPLE_LINES[14:20]))
    assert drain(f) == raw(SAMPLE_LINES[14:20])
    assert f.position == Position(len(b"".join(SAMPLE_LINES[14:20])), f.position.fingerprint)


def test_a_saved_position_resumes_in_the_rotated_file(tmp_path: Path) -> None:
    p = tmp_path / "queue_log"
    p.write_bytes(b"".join(SAMPLE_LINES[:10]))
    f = QueueLogFollower(str(p), chunk=8192)
    drain(f)
    saved = f.position
    f.close()
    # Down: more lines, then logrotate, then more in the new file.
    with p.open("ab") as out:
        out.write(b"".join(SAMPLE_LINES[10:12]))
    os.rename(p, tmp_path / "queue_log.1")
    p.write_bytes(b"".join(SAMPLE_LINES[12:15]))
    g = QueueLogFollower(str(p), chunk=8192)
    g.restore(saved)
    assert drain(g) == raw(SAMPLE_LINES[10:15])


def test_truncation_starts_again_from_zero(tmp_path: Path) -> None:
    p = tmp_path / "queue_log"
    p.write_bytes(b"".join(SAMPLE_LINES[:10]))
    f = QueueLogFollower(str(p), chunk=8192)
    drain(f)
    with p.open("r+b") as out:
        out.truncate(0)
    assert drain(f) == []
    with p.open("ab") as out:
        out.write(b"".join(SAMPLE_LINES[20:22]))
    assert drain(f) == raw(SAMPLE_LINES[20:22])
    assert f.resets == 1


def test_a_file_replaced_by_another_of_the_same_size_is_read_from_the_start(tmp_path: Path) -> None:
    p = tmp_path / "queue_log"
    old = b"".join(SAMPLE_LINES[:10])
    p.write_bytes(old)
    f = QueueLogFollower(str(p), chunk=8192)
    drain(f)
    saved = f.position
    # Another day's file, cut to exactly the same size, written in place (same inode).
    other = (TRACES / "queue-entries" / "overflow-small.queue_log").read_bytes()
    cut = other[: len(old) - 40]
    cut = cut[: cut.rfind(b"\n") + 1]
    cut += b"1796116400|NONE|NONE|NONE|INFO|" + b"x" * (len(old) - len(cut) - 32) + b"\n"
    assert len(cut) == len(old)
    with p.open("r+b") as out:
        out.write(cut)
    want = raw(cut.splitlines(keepends=True))
    assert drain(f) == want
    # And a restart with the position saved before the replacement.
    g = QueueLogFollower(str(p), chunk=8192)
    g.restore(saved)
    assert drain(g) == want


def test_garbage_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    p = tmp_path / "queue_log"
    p.write_bytes(
        SAMPLE_LINES[0] + b"not a queue log line\n" + b"\xff\xfe|1|2|3|4\n" + b"A" * 9000 + b"\n"
        + SAMPLE_LINES[1] + b"\n" + SAMPLE_LINES[2]
    )
    f = QueueLogFollower(str(p), chunk=4097, max_line=4096)
    assert drain(f) == raw(SAMPLE_LINES[:3])
    assert f.garbage == 3
    assert f.position.offset == p.stat().st_size


def test_a_missing_file_is_waited_for(tmp_path: Path) -> None:
    p = tmp_path / "queue_log"
    f = QueueLogFollower(str(p))
    assert f.read() == []
    p.write_bytes(SAMPLE_LINES[0])
    assert drain(f) == raw(SAMPLE_LINES[:1])
