"""Comparing the report's lines after a gap with an uninterrupted run's, by
the rules docs/reliability.md promises (issue 14):

- a line that began while the service was away was rebuilt from the queue
  log, whose times are Asterisk's ``time(NULL)``: its start may be up to one
  second *earlier* than the AMI Timestamp's (apps/app_queue.c takes them a
  moment apart); every other field is equal, but an IVR (NA) line's length,
  which the service measures (hold and talk seconds are Asterisk's own), may
  be one second off when its start or end is a log time.  Any other line is
  equal;
- an IVR (NA) line of a caller whose UserEvent CALLER was missed: when the
  queue log has the dialplan's CALLER lines it is rebuilt as above; when only
  AMI showed the shipped dialplan's UserEvents before the gap, its start is an
  *estimate* (the entry's second) and counted; when neither, it is missing;
- an NA line whose end (the caller's hang-up) was missed ends at the
  reconcile: its length is an *estimate*, an upper bound, and counted;
- an agent's line is equal, or, when it began or ended during the gap, within
  the same limit: up to one second early, its length one second off (the
  service measures agents' statuses itself, between AMI and log times), an
  agent who logged in during the gap included (mapping.py: named by the log,
  by member name or, by interface, once a line names it).

What is "missed", and so which lines are rebuilt or estimated, is decided
here from the trace's own events and times, never from the service's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from callcenter.ami.message import Message

DIALPLAN_USER_EVENTS = ("CALLER", "LOGGEDIN", "LOGGEDOUT")


@dataclass(frozen=True)
class Gap:
    """The service was away from ``start`` (the first AMI event it missed) until
    the whole second ``end`` (AMI back)."""

    start: float
    end: float
    knows_dialplan: bool  # a UserEvent of the shipped dialplan reached it before
    missed_callers: frozenset[str] = frozenset()  # uids whose first UserEvent CALLER it missed
    missed_hangups: frozenset[str] = frozenset()  # uids whose hang-up it missed
    # uids whose UserEvent CALLER came in the second AMI was back: it races the
    # catch-up reading that second's ENTERQUEUE, which may come first (then the
    # NA line's start is the log's, estimated)
    racing_callers: frozenset[str] = frozenset()
    log_callers: bool = False  # the queue log has the dialplan's CALLER lines

    @classmethod
    def of(cls, events: list[tuple[float, Message]], cut: int, k: int, end: float,
           log_callers: bool = False) -> Gap:
        """Events ``cut`` to ``k`` (sent before ``end``) never reached the service;
        those of the second ``end`` came while it caught up."""
        missed = [m for _, m in events[cut:k]]
        first_caller: dict[str, int] = {}  # a transferred caller's next CALLER makes no NA line
        for i, (_, m) in enumerate(events):
            if _user_event(m) == "CALLER":
                first_caller.setdefault(m["Uniqueid"], i)
        racing_end = next((i for i in range(k, len(events)) if _event_time(events[i]) >= end + 1), len(events))
        return cls(
            _event_time(events[cut]), end, knows_dialplan(events[:cut]),
            frozenset(uid for uid, i in first_caller.items() if cut <= i < k),
            frozenset(
                m["Uniqueid"] for m in missed if _user_event(m) == "CALLERHANGUP" or m.event == "Hangup"
            ),
            frozenset(uid for uid, i in first_caller.items() if k <= i < racing_end),
            log_callers,
        )

    def holds(self, began: int) -> bool:
        """Whether a line that began at this whole second may have been rebuilt
        from the queue log: the log holds every line up to the second ``end``,
        and an event's log second may be one before its AMI Timestamp's."""
        return int(self.start) <= began <= self.end + 1


def _event_time(e: tuple[float, Message]) -> float:
    stamp = e[1].get("Timestamp")
    return float(stamp) if stamp else e[0]


def _user_event(m: Message) -> str:
    return (m.get("UserEvent") or "").upper() if m.event == "UserEvent" else ""


def knows_dialplan(delivered: list[tuple[float, Message]]) -> bool:
    return any(_user_event(m) in DIALPLAN_USER_EVENTS for _, m in delivered)


def call_lines(lines: list[str]) -> list[str]:
    """The report's CALL lines, IVR (NA) ones included."""
    return [x for x in lines if ";CALL;" in x]


def by_call(lines: list[str]) -> list[str]:
    """Each call's (and agent's) lines in their order, one after another: the
    order of lines of *different* calls within a second is not part of the
    contract (a timeout is decided up to EXIT_WINDOW after Asterisk logged it)."""
    return sorted(lines, key=_owner)  # stable: keeps each one's order


def _owner(line: str) -> tuple[str, str]:
    f = _fields(line)
    return (f[1], f[6] if f[1] == "CALL" else f[2])


def _began(line: str) -> int:
    return int(datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").timestamp())


def _fields(line: str) -> list[str]:
    return line.rstrip("\n").split(";")


def compare(got: list[str], want: list[str], gap: Gap) -> tuple[list[str], range]:
    """The differences the rules do not allow (empty: equal by them), and how
    many lines the service had to estimate (a range: see ``racing_callers``)."""
    want = by_call(want)
    got = by_call(got)
    firsts = {}
    lasts = {}
    for i, w in enumerate(want):
        firsts.setdefault(_owner(w), i)
        lasts[_owner(w)] = i
    expected = []  # (index in want, line)
    estimated_starts = racing = 0
    for i, w in enumerate(want):
        f = _fields(w)
        if f[1] == "AGENT":
            expected.append((i, w))
            continue
        ivr_start = f[3] == "NA" and firsts[_owner(w)] == i
        if ivr_start and f[6] in gap.missed_callers and not gap.log_callers:
            if not gap.knows_dialplan:
                continue  # nothing told the service that the dialplan announces callers
            estimated_starts += 1
        elif ivr_start and f[6] in gap.racing_callers and gap.knows_dialplan and not gap.log_callers:
            racing += 1
        expected.append((i, w))
    bad = []
    estimated = estimated_starts
    at = 0
    for i, w in expected:
        g = got[at] if at < len(got) else ""
        verdict = _judge(g, w, i, lasts, gap) if g and _owner(g) == _owner(w) else None
        if verdict is None:
            bad.append(f"got  {g.rstrip()}\nwant {w.rstrip()}")
            return bad, range(0)  # out of step: the rest would not say more
        at += 1
        estimated += verdict
    bad += [f"got  {g.rstrip()}\nwant nothing" for g in got[at:]]
    return bad, range(estimated, estimated + racing + 1)


def _judge(g: str, w: str, i: int, lasts: dict, gap: Gap) -> int | None:
    """None when ``g`` is not ``w`` by the rules; else 1 when its seconds are an
    estimate the service counts, 0 when not."""
    if g == w:
        return 0
    gf, wf = _fields(g), _fields(w)
    early = _began(w) - _began(g)
    # Rebuilt from the queue log: the one-second limit.
    start_ok = early == 0 or (gap.holds(_began(w)) and 0 <= early <= 1)
    if start_ok and gf[1:] == wf[1:]:
        return 0
    ends = _began(w) + int(wf[4])
    same_but_length = start_ok and gf[1:4] == wf[1:4] and gf[5:] == wf[5:]
    if (
        same_but_length and (wf[3] == "NA" or wf[1] == "AGENT")
        and (gap.holds(_began(w)) or gap.holds(ends)) and abs(int(gf[4]) - int(wf[4])) <= 1
    ):
        return 0  # a length the service measures, from a log time: the same limit
    if (
        same_but_length and wf[1] == "CALL" and wf[3] == "NA" and lasts[_owner(w)] == i
        and wf[6] in gap.missed_hangups and int(wf[4]) <= int(gf[4]) <= gap.end + 2 - _began(w)
    ):
        return 1  # its hang-up was missed: ended at the reconcile
    return None
