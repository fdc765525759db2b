"""`cp` of a large file over SSH on a real pseudo-terminal: progress (bytes, rate, time left)
shows in both directions with sane figures; off a terminal, a summary line."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from tests.progress_checks import check_sane
from tests.ssh.conftest import CLI
from tests.terminal import Terminal

SIZE = 200 * 1000 * 1000


def test_a_large_cp_over_ssh_shows_progress_both_ways(
    cli: CLI, box: str, job_context: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as out:
        for _ in range(SIZE // 4_000_000):
            out.write(os.urandom(4_000_000))
    result = cli("executors", "run", box, str(job_context), "-q", "--", "sleep", "300")
    assert result.returncode == 0, result.stderr.decode()
    job = result.stdout.decode().strip()
    argv = [sys.executable, "-m", "radops", "executors", "cp", box]
    try:
        up = Terminal([*argv, str(big), f"{job}:/big.bin"], cli.env, size=(24, 160))
        assert up.wait(timeout=300) == 0, up.text
        check_sane(up.text, SIZE)
        assert re.search(rf"Copying {re.escape(str(big))} to job {job}: 20\d MB", up.text)

        back = tmp_path / "back.bin"
        down = Terminal([*argv, f"{job}:/big.bin", str(back)], cli.env, size=(24, 160))
        assert down.wait(timeout=300) == 0, down.text
        assert re.search(r"Copying /big.bin from job \w+: [\d.]+ MB, [\d.]+ MB/s", down.text)
        assert re.search(r"Copying /big.bin from job \w+: 20\d MB", down.text), down.text
        assert back.stat().st_size == SIZE

        # Off a terminal (a script): a summary if it took a second or more; a small one: none.
        plain = cli("executors", "cp", box, f"{job}:/big.bin", str(tmp_path / "b2"))
        assert plain.returncode == 0, plain.stderr.decode()
        summary = r"(Copying /big.bin from job \w+: 20\d MB in \d+s \([\d.]+ [kMG]B/s\)\n)?"
        assert re.fullmatch(summary, plain.stderr.decode()), plain.stderr
        small = cli("executors", "cp", box, f"{job}:/job/nonce", str(tmp_path / "n"))
        assert small.returncode == 0 and small.stderr == b"", small.stderr
    finally:
        cli("executors", "rm", box, job, "--force")
