"""Transfer progress: plain lines off a terminal, a status-line bar on one (pure logic; the
transfers themselves are in tests/ssh/test_ssh_layers.py and test_ssh_run.py)."""

from __future__ import annotations

import io

import pytest

from radops import progress as progress_module
from radops.progress import LineMeter, TransferState, human_bytes, metered, transfer_meter


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


def test_an_unknown_total_has_no_time_left(clock: Clock) -> None:
    state = TransferState("Pushing r", None)
    clock.now += 2
    state.update(3_000)
    assert state.text() == "Pushing r: 3 kB, 1.5 kB/s"
    state.update(4_000, total=8_000)
    assert state.text() == "Pushing r: 4 kB of 8 kB (50%), 2 kB/s, 2s left"


def test_metered_counts_and_finishes_even_when_the_reader_stops(clock: Clock) -> None:
    lines: list[str] = []
    meter = LineMeter(lines.append, "x", None, every=0)
    chunks = metered([b"ab", b"cde", b"f"], meter)
    assert next(chunks) == b"ab"
    chunks.close()  # the consumer failed: the meter still ends with a summary
    assert lines[-1] == "x: 2 B in 0s"


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
    assert "Sending img: 500 B in" in err.getvalue()


def test_off_a_terminal_the_cli_reporter_gets_plain_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from radops.cli import render

    with render.progress_reporter(False) as report:
        meter = transfer_meter(report, "Sending img", 1000)
        assert isinstance(meter, LineMeter)
        meter.update(1000)
        meter.finish()
    assert "Sending img: 1 kB in 0s" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0 B"), (999, "999 B"), (1_330_000_000, "1.33 GB"), (2.5e12, "2.5 TB")]
)
def test_sizes_read_like_dockers(size: float, text: str) -> None:
    assert human_bytes(size) == text
