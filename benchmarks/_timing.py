"""Shared timing helpers: run a command, time it, read its peak memory; compare two commands.

Pure standard library. Every figure is a wall-clock time taken with `time.perf_counter` around
one child process, and the child's own peak RSS from `os.wait4` (not a delta of
RUSAGE_CHILDREN, which mixes in every earlier child).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

COMMAND_TIMEOUT = 300.0  # seconds; no single benchmark command may take longer


@dataclass(frozen=True)
class Run:
    """One finished child process."""

    seconds: float
    max_rss_kib: int
    returncode: int
    cpu_seconds: float = 0.0  # user + system time of the child itself


@dataclass(frozen=True)
class Stats:
    """Several runs of one command: median and range of time and peak memory."""

    runs: tuple[Run, ...]

    @property
    def times(self) -> list[float]:
        return [r.seconds for r in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    @property
    def median_cpu(self) -> float:
        return statistics.median(r.cpu_seconds for r in self.runs)

    @property
    def median_rss_mib(self) -> float:
        return statistics.median(r.max_rss_kib for r in self.runs) / 1024

    @property
    def max_rss_mib(self) -> float:
        return max(r.max_rss_kib for r in self.runs) / 1024

    def describe(self) -> str:
        """`0.412 s (0.401-0.433)`: median, then min-max."""
        return f"{fmt_seconds(self.median)} ({fmt_seconds(self.min, unit=False)}-{self.max:.3f})"


@dataclass
class Row:
    """One line of the figures table. `met` is None when the row has no goal."""

    benchmark: str
    radops: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None


@dataclass
class Result:
    """What one benchmark module returns: table rows and Markdown notes for its own section."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt_seconds(seconds: float, unit: bool = True) -> str:
    return f"{seconds:.3f} s" if unit else f"{seconds:.3f}"


def run_once(
    argv: Sequence[str],
    *,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    stderr: IO[bytes] | int | None = subprocess.DEVNULL,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> Run:
    """Run argv to completion; its wall time and its own peak RSS (KiB, from wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env, cwd=cwd
    )
    # Block in wait4 (exact end time, and this child's own rusage); a timer kills a hung child.
    killer = threading.Timer(COMMAND_TIMEOUT, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if seconds >= COMMAND_TIMEOUT:
        raise TimeoutError(f"{argv[0]} took more than {COMMAND_TIMEOUT:.0f} s")
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, list(argv))
    return Run(
        seconds=seconds,
        max_rss_kib=int(usage.ru_maxrss),
        returncode=proc.returncode,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def compare(
    subject: Callable[[], Run], baseline: Callable[[], Run], runs: int, warmup: int = 1
) -> tuple[Stats, Stats]:
    """Time subject and baseline `runs` times each, alternating which goes first.

    Alternating spreads drift (caches, CPU frequency, other load) evenly over both sides.
    The first `warmup` rounds are thrown away (cold page cache, .pyc compilation).
    """
    for _ in range(warmup):
        subject()
        baseline()
    subject_runs: list[Run] = []
    baseline_runs: list[Run] = []
    for i in range(runs):
        if i % 2 == 0:
            subject_runs.append(subject())
            baseline_runs.append(baseline())
        else:
            baseline_runs.append(baseline())
            subject_runs.append(subject())
    return Stats(tuple(subject_runs)), Stats(tuple(baseline_runs))


def ratio_row(
    benchmark: str, subject: Stats, baseline: Stats, goal: float, baseline_name: str = ""
) -> Row:
    """A table row: both medians with min-max, the ratio of medians and whether it meets goal."""
    ratio = subject.median / baseline.median
    prefix = f"{baseline_name}: " if baseline_name else ""
    return Row(
        benchmark=benchmark,
        radops=subject.describe(),
        baseline=prefix + baseline.describe(),
        ratio=f"{ratio:.2f}x",
        goal=f"≤ {goal:g}x",
        met=ratio <= goal,
    )
