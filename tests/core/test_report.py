"""The report file: format, append, flush, rotation, unwritable paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytest_twisted

from callcenter.report import ReportWriter, ReportWriterError, Transition

from .traces import UTC

T = 1537197071.12  # 2018-09-17 15:11:11 UTC


def call_line(status: str = "QUEUED") -> Transition:
    return Transition("CALL", "3453439819", status, T, 15, "q-callcenter", "1537197071.12")


def test_design_format(tmp_path: Path) -> None:
    w = ReportWriter(str(tmp_path / "report.csv"), UTC)
    w.open()
    w.write([
        call_line(),
        Transition("AGENT", "98427456", "AVAIL", T + 8, 23, "q-callcenter"),
        Transition("AGENT", "98427456", "PAUSED", T + 31, 60, "q-callcenter", reason="Lunch"),
    ])
    # Flushed at once: readable before close.  The eighth column is the pause
    # reason of a PAUSED period, empty on every other line (docs/report.md).
    assert (tmp_path / "report.csv").read_text() == (
        "2018-09-17 15:11:11;CALL;3453439819;QUEUED;15;q-callcenter;1537197071.12;\n"
        "2018-09-17 15:11:19;AGENT;98427456;AVAIL;23;q-callcenter;;\n"
        "2018-09-17 15:11:42;AGENT;98427456;PAUSED;60;q-callcenter;;Lunch\n"
    )


def test_separators_from_the_pbx_cannot_break_columns() -> None:
    t = Transition("AGENT", "12;34\n", "PAUSED", T, 1, "q;x", "", reason="a;b\nc")
    assert t.line(UTC).count(";") == 7 and t.line(UTC).endswith("\n") and t.line(UTC).count("\n") == 1


def test_reopened_not_truncated_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_text("old line\n")
    w = ReportWriter(str(path), UTC)
    w.open()
    w.write([call_line()])
    assert path.read_text().splitlines()[0] == "old line"
    assert len(path.read_text().splitlines()) == 2


def test_rotation_by_move_and_by_sighup(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    w = ReportWriter(str(path), UTC)
    w.open()
    w.write([call_line("NA")])
    os.rename(path, tmp_path / "report.csv.1")  # logrotate without postrotate
    w.write([call_line("QUEUED")])
    assert "QUEUED" in path.read_text() and "NA" not in path.read_text()
    os.rename(path, tmp_path / "report.csv.2")
    w.reopen()  # what SIGHUP does
    w.write([call_line("INCALL")])
    assert path.read_text().count("\n") == 1 and "INCALL" in path.read_text()
    assert "NA" in (tmp_path / "report.csv.1").read_text()


def test_unwritable_path_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    w = ReportWriter(str(blocker / "report.csv"))
    with pytest.raises(ReportWriterError, match="report file .*report.csv: cannot open for writing"):
        w.open()


def test_write_failure_is_logged_once_and_recovers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from twisted.logger import globalLogPublisher

    seen: list[dict] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        path = tmp_path / "d" / "report.csv"
        w = ReportWriter(str(path), UTC)
        w.open()
        os.remove(path)
        os.rmdir(tmp_path / "d")
        (tmp_path / "d").write_text("now a file")  # the directory is gone for good
        for _ in range(5):
            w.write([call_line()])
        errors = [e for e in seen if e.get("log_level") and e["log_level"].name == "error"]
        assert len(errors) == 1
        os.remove(tmp_path / "d")
        w.write([call_line("INCALL")])
        assert "INCALL" in path.read_text()
    finally:
        globalLogPublisher.removeObserver(seen.append)


class _CountingWriter(ReportWriter):
    """Counts the writes that reach the file (the test's own observer)."""

    writes = 0

    def write_lines(self, lines: list[str], fsync: bool | None = None) -> int:
        self.writes += 1
        return super().write_lines(lines, fsync)


def test_turn_writer_writes_a_turns_lines_at_once_in_order(tmp_path: Path) -> None:
    from twisted.internet.task import Clock

    from callcenter.report import TurnWriter

    path = tmp_path / "report.csv"
    clock = Clock()
    w = _CountingWriter(str(path), UTC)
    w.open()
    turn = TurnWriter(clock, w)
    turn.add([call_line("NA")])
    turn.add([])
    turn.add([call_line("QUEUED"), Transition("AGENT", "98427456", "AVAIL", T + 8, 23, "q-callcenter")])
    assert path.read_text() == "" and turn.held_lines == 3  # not before the turn ends
    clock.advance(0)
    assert [line.split(";")[3] for line in path.read_text().splitlines()] == ["NA", "QUEUED", "AVAIL"]
    assert w.writes == 1 and turn.held_lines == 0


def test_turn_writer_holds_what_the_disk_refuses_and_retries(tmp_path: Path) -> None:
    from twisted.internet.task import Clock

    from callcenter.report import TurnWriter

    clock = Clock()
    w = ReportWriter("/dev/full", UTC)
    turn = TurnWriter(clock, w, retry=1.0)
    turn.add([call_line("NA"), call_line("QUEUED")])
    clock.advance(0)
    assert turn.held_lines == 2 and w.failing
    w.path = str(tmp_path / "report.csv")  # space again (another file: /dev/full stays full)
    clock.advance(1.0)
    assert turn.held_lines == 0
    assert [line.split(";")[3] for line in (tmp_path / "report.csv").read_text().splitlines()] == ["NA", "QUEUED"]


@pytest_twisted.ensureDeferred
async def test_sync_off_thread_shares_one_fsync_among_requests_made_while_one_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twisted.internet import reactor

    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:  # the test's own count of the system calls
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    path = tmp_path / "report.csv"
    w = ReportWriter(str(path), UTC)
    w.open()
    assert w.write_lines([call_line("NA").line(UTC)], fsync=False) == 1
    first = w.sync_off_thread(reactor)
    assert w.write_lines([call_line("QUEUED").line(UTC)], fsync=False) == 1
    second, third = w.sync_off_thread(reactor), w.sync_off_thread(reactor)
    w.close()  # the sync works on its own descriptor: a rotation meanwhile is harmless
    assert [await first, await second, await third] == [True, True, True]
    assert len(synced) == 2  # the first request's, then one for the two made while it ran
    assert [line.split(";")[3] for line in path.read_text().splitlines()] == ["NA", "QUEUED"]
