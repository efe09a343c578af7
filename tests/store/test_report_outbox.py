"""Report lines across a kill at the worst moments of one event.

The event is a caller abandoning (its report line is "QUEUED for N s"). A
restart's resync finds the call gone at the PBX; if Redis did not get the
event, the resync closes the call itself and reports that line.  So:

- report file written before Redis (the plain subscriber): a kill between the
  two reports the line twice;
- with the store's outbox (``RedisStore(..., report=writer)``): every line is
  in the file exactly once whichever the moment of the kill.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from callcenter.report import ReportWriter
from callcenter.store.redis_store import RedisStore
from tests.support.pbxstate import PbxState

from .support import UTC, Rig, trace_events

TRACE = "abandon"


class Killable(ReportWriter):
    """A report writer in a process that can be SIGKILLed at a chosen write."""

    def __init__(self, path: str) -> None:
        super().__init__(path, UTC)
        self.store: RedisStore | None = None
        self.dead = False
        self.kill_at: str | None = None  # "before-write" / "after-write" of the next write

    def kill(self) -> None:
        self.dead = True
        if self.store is not None:
            if self.store.journal is not None:
                self.store.journal.append = lambda records: False  # a dead process writes nothing
            if self.store._proto is not None:
                self.store._proto.transport.abortConnection()  # unsent bytes are lost, as in a kill

    def write_lines(self, lines, fsync=None) -> int:
        if self.dead:
            return 0
        if self.kill_at == "before-write":
            self.kill()
            return 0
        n = super().write_lines(lines, fsync)
        if self.kill_at == "after-write":
            self.kill()
        return n


def _key(line: str) -> tuple[str, ...]:
    f = line.rstrip("\n").split(";")
    return (f[1], f[2], f[3], f[5], f[6])  # all but the time and the duration


async def _run(tmp_path: Path, redis, moment: str, outbox: bool) -> tuple[list[str], Rig]:
    redis_url = redis.url
    events = trace_events(TRACE)
    cut = next(i for i, (_, m) in enumerate(events) if m.event == "QueueCallerAbandon")
    path = str(tmp_path / f"{moment}-{outbox}.csv")

    first = Rig(events[0][0])
    writer = Killable(path)
    if outbox:
        store = RedisStore(reactor, redis_url, "k:", first.center, report=writer)
    else:
        first.center.subscribe(lambda ch: writer.write(ch.transitions))  # as service.py does
        store = RedisStore(reactor, redis_url, "k:", first.center)
    writer.store = store
    await store.load()
    store.start()
    first.feed(events[:cut])
    await store.flush()
    assert not writer.dead

    if moment == "before-redis":
        first.feed(events[cut : cut + 1])
        writer.kill()  # before the reactor sent the transaction
    else:
        writer.kill_at = moment  # when the line is due, after Redis has the event
        first.feed(events[cut : cut + 1])
        await store.flush()
    assert writer.dead
    await store.stop()
    # Lines committed but not yet trimmed (trims lag behind the file): the restart
    # must tell which of them are in the file already.
    pending = redis.command("LLEN", "k:report:outbox")
    assert (pending > 0) if outbox else (pending == 0)

    # The restart: same Redis and file, then the PBX's truth and the rest of the trace.
    pbx = Rig(events[0][0])
    pbx.feed(events[: cut + 1])
    second = Rig(first.clock.seconds())
    writer2 = ReportWriter(path, UTC)
    if outbox:
        store2 = RedisStore(reactor, redis_url, "k:", second.center, report=writer2)
    else:
        second.center.subscribe(lambda ch: writer2.write(ch.transitions))
        store2 = RedisStore(reactor, redis_url, "k:", second.center)
    await store2.load()
    store2.start()
    second.center.reconcile(*PbxState().feed(events[: cut + 1]).answers())
    second.feed(events[cut + 1 :])
    await store2.flush()
    await store2.stop()
    writer2.close()
    return Path(path).read_text().splitlines(keepends=True), second


@pytest.mark.parametrize("moment", ["before-redis", "before-write", "after-write"])
@pytest_twisted.ensureDeferred
async def test_outbox_keeps_every_line_once(tmp_path, redis_server, moment, logs):
    events = trace_events(TRACE)
    whole = Rig(events[0][0])
    whole.feed(events)
    lines, after = await _run(tmp_path, redis_server, moment, outbox=True)
    appended = logs.matching("appended")
    # Only a kill after Redis took the event and before the file did leaves lines to add.
    assert len(appended) == (1 if moment == "before-write" else 0), appended
    assert redis_server.command("EXISTS", "k:report:outbox") == 0
    if moment == "before-redis":
        # Redis never had the abandon: the resync closed the call, with its own
        # estimate of the wait.  One line, as it should; only the seconds may differ.
        assert [_key(x) for x in lines] == [_key(x) for x in whole.lines]
    else:
        assert lines == whole.lines
    for name in ("received", "answered", "abandoned"):
        assert getattr(after.center.book.total(), name) == getattr(whole.center.book.total(), name)


@pytest_twisted.ensureDeferred
async def test_without_the_outbox_a_kill_between_file_and_redis_duplicates(tmp_path, redis_server):
    events = trace_events(TRACE)
    whole = Rig(events[0][0])
    whole.feed(events)
    lines, after = await _run(tmp_path, redis_server, "before-redis", outbox=False)
    keys = [_key(x) for x in lines]
    assert len(keys) == len(whole.lines) + 1
    doubled = [k for k in set(keys) if keys.count(k) > 1]
    assert doubled and doubled[0][2] == "QUEUED"  # the abandoned call's line, twice
    # KPIs are right all the same: Redis never counted the abandon, the resync did.
    assert after.center.book.total().abandoned == whole.center.book.total().abandoned
