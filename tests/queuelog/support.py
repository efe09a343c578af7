"""A trace's queue_log as Asterisk would have written it up to some instant,
and a Callcenter with the Redis store and the queue-log catch-up on a Clock."""

from __future__ import annotations

from pathlib import Path

from support.traces import TRACES
from twisted.internet import defer, reactor

from callcenter.queuelog.catchup import QueueLogCatchup
from callcenter.queuelog.persist import CursorPart
from callcenter.store.redis_store import RedisStore
from tests.store.support import Rig, trace_events


class QueueLogFile:
    """Appends a trace's recorded queue_log lines whose time has come.

    ``shipped``: the log as the shipped configuration writes it, which the
    recorded logs are not (their rig predates both): with the dialplan's
    ``CALLER`` lines (``with_caller_lines``) and members named by member name
    (queues.conf ``log_membername_as_agent=yes``, ``with_member_names``).
    Both are derived from the trace's own AMI events, so they say exactly what
    that Asterisk would have written."""

    def __init__(self, name: str, path: Path, shipped: bool = False) -> None:
        self.lines = (TRACES / f"{name}.queue_log").read_bytes().splitlines(keepends=True)
        if shipped:
            events = trace_events(name)
            self.lines = with_member_names(with_caller_lines(self.lines, events), events)
        self.path = path
        self.written = 0
        path.write_bytes(b"")

    def upto(self, t: float) -> None:
        """Every line stamped at or before the whole second of ``t``."""
        new = []
        while self.written < len(self.lines) and int(self.lines[self.written].split(b"|", 1)[0]) <= int(t):
            new.append(self.lines[self.written])
            self.written += 1
        if new:
            with self.path.open("ab") as f:
                f.write(b"".join(new))


def with_caller_lines(lines: list[bytes], events: list) -> list[bytes]:
    """``lines`` with a ``CALLER`` line for every UserEvent CALLER of ``events``:
    ``QueueLog(NONE,${UNIQUEID},NONE,CALLER,${CALLERID(num)})`` runs right after
    the UserEvent and before ``Queue()``, so it is written just before that
    caller's next ENTERQUEUE, with a whole second no later than that one's and
    no later than the UserEvent's Timestamp."""
    out = list(lines)
    for t, m in events:
        if m.event != "UserEvent" or (m.get("UserEvent") or "").upper() != "CALLER":
            continue
        uid, stamp = m["Uniqueid"], int(float(m.get("Timestamp") or t))
        at = next(
            (i for i, x in enumerate(out)
             if x.split(b"|")[1].decode() == uid and b"|ENTERQUEUE|" in x and int(x.split(b"|")[0]) >= stamp - 1),
            None,
        )
        if at is None:
            at = next((i for i, x in enumerate(out) if int(x.split(b"|")[0]) > stamp), len(out))
        else:
            stamp = min(stamp, int(out[at].split(b"|")[0]))
        number = (m.get("CallerIDNum") or "").encode()
        out.insert(at, b"%d|%s|NONE|NONE|CALLER|%s\n" % (stamp, uid.encode(), number))
    return out


def with_member_names(lines: list[bytes], events: list) -> list[bytes]:
    """``lines`` as app_queue writes them with ``log_membername_as_agent=yes``:
    ADDMEMBER/REMOVEMEMBER name the member by its MemberName instead of its
    interface (apps/app_queue.c, aqm_exec/rqm_exec); the names are the ones the
    trace's QueueMemberAdded events give each interface."""
    names = {
        m["Interface"].encode(): m["MemberName"].encode()
        for _, m in events
        if m.event == "QueueMemberAdded" and m.get("MemberName") and m.get("Interface")
    }
    out = []
    for x in lines:
        f = x.split(b"|")
        if len(f) > 4 and f[4].rstrip(b"\r\n") in (b"ADDMEMBER", b"REMOVEMEMBER") and f[3] in names:
            f[3] = names[f[3]]
        out.append(b"|".join(f))
    return out


class Service:
    """One run of the service: Callcenter + RedisStore + catch-up (no AMI socket)."""

    def __init__(self, start: float, redis_url: str, prefix: str, qlog: Path | None) -> None:
        self.rig = Rig(start)
        self.center = self.rig.center
        self.clock = self.rig.clock
        self.catchup = QueueLogCatchup(self.clock, self.center, str(qlog)) if qlog else None
        self.store = RedisStore(reactor, redis_url, prefix, self.center)
        if self.catchup is not None:
            self.store.add_part(CursorPart(self.catchup.cursor, prefix))
        self.ami = FakeAmi()
        self.center.ami = self.ami

    async def start(self) -> None:
        await self.store.load()
        self.store.start()
        if self.catchup is not None:
            self.catchup.start(store_loaded=self.store.loaded)

    def settle(self) -> None:
        """Let the catch-up's zero-delay reads run (a Clock fires them only when advanced)."""
        for _ in range(10_000):
            if self.catchup is None or not self.center.holding:
                return
            self.clock.advance(0)
        raise AssertionError("catch-up never finished")

    def login(self, queue_status, channels) -> None:
        """AMI logged in: the catch-up's hook runs before the resync's."""
        if self.catchup is not None:
            self.catchup.on_login()
        self.center.resync()
        self.ami.answer(queue_status, channels)
        self.settle()

    async def stop(self) -> None:
        await self.store.flush()
        if self.catchup is not None:
            self.catchup.stop()
        await self.store.stop()


class FakeAmi:
    """Just enough of an AMIClient for the center's resync: list actions whose
    answers the test gives when it wants (the PBX's state at that moment)."""

    def __init__(self) -> None:
        self.pending: list = []

    def list_action(self, name: str, **headers: str):
        d = defer.Deferred()
        self.pending.append((name, d))
        return d

    def action(self, name: str, **headers: str):
        return defer.succeed(None)

    def drop_connection(self) -> None:
        pass

    def answer(self, queue_status: list, channels: list) -> None:
        """Answer every list action asked so far (and those they lead to)."""
        while self.pending:
            name, d = self.pending.pop(0)
            items = channels if name == "CoreShowChannels" else queue_status
            d.callback([None, *items])
