"""Transfer progress: plain lines off a terminal, a status-line bar on one (pure logic; the
transfers themselves are in tests/ssh/test_ssh_layers.py and test_ssh_run.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from radops import progress as progress_module
from radops.progress import (
    PLAIN_EVERY_S,
    LineMeter,
    Passing,
    TransferState,
    human_bytes,
    metered,
    on_terminal,
    transfer_meter,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", fake)
    return fake


def test_plain_lines_at_most_every_few_seconds_then_a_summary(clock: Clock) -> None:
    lines: list[str] = []
    meter = transfer_meter(lines.append, "Sending img to gpu1", 100_000_000)
    assert isinstance(meter, LineMeter)
    for second in range(1, 11):
        clock.now += 1
        meter.update(second * 10_000_000)
    meter.finish()
    meter.finish()  # once only
    assert lines == [
        "Sending img to gpu1: 50 MB of 100 MB (50%), 10 MB/s, 5s left",
        "Sending img to gpu1: 100 MB of 100 MB (100%), 10 MB/s, 0s left",
        "Sending img to gpu1: 100 MB in 10s (10 MB/s)",
    ]


def test_the_rate_counts_bytes_sent_not_the_wait_for_the_first(clock: Clock) -> None:
    """`docker save` exports for a while before its first byte: that wait is no transfer."""
    state = TransferState("Sending img", 40_000_000)
    clock.now += 30  # the local export
    state.update(1_000_000)
    clock.now += 3
    state.update(31_000_000)
    assert state.text() == "Sending img: 31 MB of 40 MB (78%), 10 MB/s, 1s left"
    assert state.summary() == "Sending img: 31 MB in 3s (10 MB/s)"


def test_an_estimated_total_reads_about_and_is_dropped_once_passed(clock: Clock) -> None:
    # A build context of tiny files is mostly tar headers; a layer archive has metadata on top.
    state = TransferState("Sending the build context to gpu1", 7_680, estimate=True)
    state.update(5_000)
    assert state.text() == "Sending the build context to gpu1: 5 kB of about 7.68 kB (65%)"
    state.update(10_240)
    assert state.text() == "Sending the build context to gpu1: 10.2 kB"
    assert state.fraction is None and state.left() is None


def test_an_unknown_total_has_no_time_left(clock: Clock) -> None:
    state = TransferState("Pushing r", None)
    state.update(1_000)
    clock.now += 2
    state.update(4_000)
    assert state.text() == "Pushing r: 4 kB, 1.5 kB/s"
    state.update(4_000, total=8_000)
    assert state.text() == "Pushing r: 4 kB of 8 kB (50%), 1.5 kB/s, 3s left"
    state.update(5_000, total=None)  # a layer of unknown size turned up
    assert state.text() == "Pushing r: 5 kB, 2 kB/s"


def test_too_quick_to_tell_is_a_summary_without_a_rate(clock: Clock) -> None:
    state = TransferState("x", None)
    state.update(3)
    assert state.summary() == "x: 3 B"


def test_metered_counts_what_was_taken_and_no_summary_when_the_reader_stops(clock: Clock) -> None:
    lines: list[str] = []
    meter = LineMeter(lines.append, "x", None, every=0)
    chunks = metered([b"ab", b"cde", b"f"], meter)
    assert next(chunks) == b"ab"
    assert next(chunks) == b"cde"  # taking the next one says the first was sent
    assert lines == ["x: 2 B"]  # every=0: a line each time
    chunks.close()  # the consumer failed: its error says so, no summary claims a transfer
    assert lines == ["x: 2 B"]
    whole = list(metered([b"ab", b"c"], meter := LineMeter(lines.append, "y", None, every=9)))
    assert whole == [b"ab", b"c"] and meter.finished and lines[-1] == "y: 3 B"


def test_passing_lines_off_a_terminal_at_most_one_per_interval(clock: Clock) -> None:
    lines: list[str] = []
    report = Passing(lines.append)
    for tenth in range(120):  # a pull's layer events: 12 a second for 10 s
        report(f"gpu1 pulled {tenth // 12} of 10 layers")
        clock.now += 1 / 12
    assert lines == [
        "gpu1 pulled 0 of 10 layers",
        "gpu1 pulled 5 of 10 layers",
    ]
    report.flush()  # the pull ended: its last state, held back, is shown
    report.flush()  # once
    assert lines[2:] == ["gpu1 pulled 9 of 10 layers"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_cli_reporter_draws_its_own_meter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from radops.cli import render

    err = _Terminal()
    monkeypatch.setattr(render.sys, "stderr", err)
    with render.progress_reporter(False) as report:
        meter = transfer_meter(report, "Sending img", 1000)
        assert isinstance(meter, render._StatusMeter)
        meter.update(500)
        shown = str(meter.status.renderable.text)
        assert "━" in shown and "500 B of 1 kB (50%)" in shown
        meter.finish()
    assert "Sending img: 500 B" in err.getvalue()


def test_on_a_terminal_passing_lines_all_reach_the_status_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from radops.cli import render

    monkeypatch.setattr(render.sys, "stderr", _Terminal())
    with render.progress_reporter(False) as report:
        passing = Passing(report)
        assert on_terminal(report) and passing.throttle is None
        passing("gpu1 pulled 3 of 12 layers of r")
        assert "pulled 3 of 12" in str(report.status.renderable.text)  # type: ignore[attr-defined]


def test_off_a_terminal_the_cli_reporter_gets_plain_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from radops.cli import render

    with render.progress_reporter(False) as report:
        meter = transfer_meter(report, "Sending img", 1000)
        assert isinstance(meter, LineMeter)
        meter.update(1000)
        meter.finish()
    assert "Sending img: 1 kB" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0 B"), (999, "999 B"), (1_330_000_000, "1.33 GB"), (2.5e12, "2.5 TB")]
)
def test_sizes_read_like_dockers(size: float, text: str) -> None:
    assert human_bytes(size) == text


def test_a_pull_off_a_terminal_reports_once_per_interval(clock: Clock) -> None:
    from radops.executors.ssh.shipping import _PullProgress

    lines: list[str] = []
    pull = _PullProgress("reg/radops/t:1", "gpu1", lines.append)
    events = [f"{n:012x}: {state}" for n in range(6) for state in ("Waiting", "Pull complete")]
    assert all(pull.feed(event.encode()) for event in events)  # 12 events in no time
    assert lines == ["gpu1 pulled 0 of 1 layers of reg/radops/t:1"]
    clock.now += PLAIN_EVERY_S
    pull.feed(b"000000000006: Pull complete")
    assert lines[-1] == "gpu1 pulled 7 of 7 layers of reg/radops/t:1"
    pull.feed(b"000000000007: Already exists")
    pull.progress.flush()
    assert lines[1:] == [
        "gpu1 pulled 7 of 7 layers of reg/radops/t:1",
        "gpu1 pulled 8 of 8 layers of reg/radops/t:1",
    ]


def test_a_build_contexts_size_is_the_archives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The total shown for a context of small files: the tar's own length (headers, padding
    and tarfile's 10 kB records included), not the files' 7.68 kB."""
    from radops.images.archive import context_archive
    from radops.images.context import snapshot

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "ctx"
    folder.mkdir()
    for n in range(3):
        (folder / f"f{n}.txt").write_bytes(b"x" * 2_560)
    (folder / "Dockerfile").write_text("FROM busybox\n")
    chunks, size = context_archive(snapshot(folder, "Dockerfile"))
    assert size == sum(len(chunk) for chunk in chunks)


def test_a_brief_transfer_leaves_no_summary(clock: Clock) -> None:
    lines: list[str] = []
    quick = transfer_meter(lines.append, "Copying a", None, brief=1.0)
    quick.update(10)
    clock.now += 0.5
    quick.finish()
    assert lines == []
    slow = transfer_meter(lines.append, "Copying b", None, brief=1.0)
    slow.update(1_000_000)
    clock.now += 2
    slow.update(3_000_000)
    slow.finish()
    assert lines == ["Copying b: 3 MB in 3s (1 MB/s)"]  # the first MB at that rate too
