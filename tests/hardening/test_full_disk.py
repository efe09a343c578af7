"""Issue 10, point 1: the report on a full disk loses and glues no line.

A real redis-server, the real store and report writer, a 64 KiB tmpfs that a
filler file fills up (and ``/dev/full``).  Expected lines come from a replay
of the same events into a bare Callcenter (``Rig``), not from the writer.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import pytest_twisted
from store.support import UTC, Rig, wait_for
from twisted.internet import reactor

from callcenter.report import ReportWriter, is_report_line
from callcenter.store.redis_store import RedisStore

from .traffic import messages, toggle_blocks


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def _outbox(redis, prefix: str) -> list[str]:
    return [x.decode() for x in redis.command("LRANGE", prefix + "report:outbox", "0", "-1")]


@pytest_twisted.ensureDeferred
async def test_full_disk_holds_lines_in_the_outbox_and_writes_each_once(
    small_disk, redis_server, logs
):
    events = messages(toggle_blocks(600))
    whole = Rig(events[0][0])
    whole.feed(events)
    rig = Rig(events[0][0])
    path = small_disk / "report.csv"
    writer = ReportWriter(str(path), UTC)
    writer.open()
    store = RedisStore(reactor, redis_server.url, "fd:", rig.center, report=writer)
    await store.load()
    store.start()
    try:
        rig.feed(events[:50])
        await store.flush()
        before = len(rig.lines)
        assert path.read_text().splitlines(keepends=True) == whole.lines[:before]

        filler = _fill(small_disk)
        rig.feed(events[50:])
        await store.flush()
        # The disk is full: some lines fitted in the file's last page, the rest are
        # held, in memory and in Redis's outbox; none is half-written.
        text = path.read_text()
        in_file = text.splitlines(keepends=True)
        assert text.endswith("\n") and all(is_report_line(x) for x in in_file)
        assert in_file == whole.lines[: len(in_file)]
        assert store.held_lines == len(whole.lines) - len(in_file) > 300
        # (the LTRIM of what did fit follows the write: wait for Redis to apply it)
        await wait_for(lambda: _outbox(redis_server, "fd:") == whole.lines[len(in_file):],
                       timeout=5, what="outbox = the held lines")
        assert writer.failing
        assert len(logs.matching("cannot write")) == 1

        os.remove(filler)  # space returns: every held line once, in order
        await wait_for(lambda: store.held_lines == 0, timeout=15, what="held lines written")
        await store.flush()
        assert path.read_text().splitlines(keepends=True) == whole.lines
        assert len(logs.matching("report.csv writable again")) == 1
        await wait_for(lambda: _outbox(redis_server, "fd:") == [], timeout=5, what="outbox trimmed")
    finally:
        await store.stop()
        writer.close()


@pytest_twisted.ensureDeferred
async def test_dev_full_loses_nothing_and_a_restart_writes_every_line_once(
    tmp_path, redis_server, logs
):
    events = messages(toggle_blocks(100))
    whole = Rig(events[0][0])
    whole.feed(events)
    rig = Rig(events[0][0])
    writer = ReportWriter("/dev/full", UTC)
    writer.open()
    store = RedisStore(reactor, redis_server.url, "df:", rig.center, report=writer)
    await store.load()
    store.start()
    rig.feed(events)
    await store.flush()
    # Nothing fits; every line is held and in Redis's outbox, one log line.
    assert store.held_lines == len(whole.lines)
    assert _outbox(redis_server, "df:") == whole.lines
    assert len(logs.matching("cannot write")) == 1
    await store.stop()
    writer.close()

    # The next start (with a report that is writable) appends them all, once.
    path = tmp_path / "report.csv"
    writer2 = ReportWriter(str(path), UTC)
    writer2.open()
    second = Rig(rig.clock.seconds())
    store2 = RedisStore(reactor, redis_server.url, "df:", second.center, report=writer2)
    await store2.load()
    await store2.flush()
    await store2.stop()
    writer2.close()
    assert path.read_text().splitlines(keepends=True) == whole.lines
    assert redis_server.command("EXISTS", "df:report:outbox") == 0


def test_a_torn_last_line_is_moved_aside_never_glued(tmp_path, logs):
    path = tmp_path / "report.csv"
    good = "2026-12-01 09:00:47;AGENT;1032;AVAIL;3;q-callcenter;\n"
    path.write_text(good + "2026-12-01 09:00:48;AGENT;103")  # a kill in mid-write
    writer = ReportWriter(str(path), UTC)
    writer.open()
    nxt = "2026-12-01 09:00:48;AGENT;1022;PAUSED;5;q-callcenter;\n"
    assert writer.write_lines([nxt]) == 1
    writer.close()
    assert path.read_text() == good + nxt
    assert (tmp_path / "report.csv.torn").read_text() == "2026-12-01 09:00:48;AGENT;103\n"
    assert len(logs.matching("torn last line")) == 1
