"""`cp` of a large file on the local engine, on a real pseudo-terminal: progress (bytes, rate,
time left) shows in both directions, its figures sane; off a terminal one summary line."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from tests.cli_process import radops
from tests.progress_checks import check_sane
from tests.terminal import Terminal

SIZE = 400 * 1000 * 1000


def test_a_large_cp_shows_progress_both_ways(
    tools_context: Path, start_job: Callable[..., str], tmp_path: Path
) -> None:
    job = start_job(tools_context, "sleep", "600")
    big = tmp_path / "big.bin"
    with open(big, "wb") as out:
        for _ in range(SIZE // 4_000_000):
            out.write(os.urandom(4_000_000))
    env = dict(os.environ)
    argv = [sys.executable, "-m", "radops", "executors", "cp", "local"]

    up = Terminal([*argv, str(big), f"{job}:/big.bin"], env, size=(24, 160))
    assert up.wait(timeout=300) == 0, up.text
    check_sane(up.text, SIZE)
    # Its summary stays, unless the copy took under a second (then the status line was all).
    summaries = re.findall(rf"to job {job}: ([\d.]+ [kMG]?B) in \d+s \([\d.]+ [kMG]B/s\)", up.text)
    assert summaries in ([], ["400 MB"]), (summaries, up.text)
    assert (job_file := radops("executors", "exec", "local", job, "--", "wc", "-c", "/big.bin"))
    assert job_file.stdout.split()[0] == str(SIZE), job_file.stdout

    back = tmp_path / "back.bin"
    down = Terminal([*argv, f"{job}:/big.bin", str(back)], env, size=(24, 160))
    assert down.wait(timeout=300) == 0, down.text
    assert re.search(r"Copying /big.bin from job \w+: 40\d MB", down.text), down.text
    assert "/s" in down.text  # a size unknown beforehand: bytes and rate
    assert back.stat().st_size == SIZE

    # Off a terminal (a script): no status line; a summary if it took a second or more.
    plain = radops("executors", "cp", "local", f"{job}:/big.bin", str(tmp_path / "b2"))
    assert plain.returncode == 0, plain.stderr
    summary = r"(Copying /big.bin from job \w+: 40\d MB in \d+s \([\d.]+ [kMG]B/s\)\n)?"
    assert re.fullmatch(summary, plain.stderr), plain.stderr
    # A small copy says nothing.
    small = radops("executors", "cp", "local", f"{job}:/marker.txt", str(tmp_path / "m"))
    assert small.returncode == 0 and small.stderr == "", small.stderr
