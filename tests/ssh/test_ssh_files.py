"""`cp` between here and a job on the SSH executor, end to end: a 200 MB folder both ways through
the one SSH connection, with the radops process's own peak memory measured (it must not grow with
the data), and `-` for a tar on stdout and stdin."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from tests.ssh.conftest import CLI

FILES = 20
FILE_BYTES = 10 * 1024 * 1024  # 20 x 10 MiB = 200 MiB
PEAK_RSS_LIMIT_MIB = 120  # radops' own start-up is ~60 MiB; 200 MiB held in memory would show


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _peak_rss_mib(cli: CLI, *args: str) -> float:
    """Run radops to completion; the peak RSS of its own memory (VmHWM), failing on a non-zero
    exit. Not wait4's ru_maxrss: Linux starts a child's at its parent's (this pytest process,
    which has just held the test data) when it execs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "radops", *args],
        env=cli.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak_kib = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):  # monotonic: the last reading is the peak so far
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    assert proc.stderr is not None
    assert proc.returncode == 0, proc.stderr.read().decode()
    assert peak_kib > 0
    return peak_kib / 1024


def test_a_200_mb_folder_both_ways_with_flat_memory(
    cli: CLI, box: str, job_context: Path, tmp_path: Path
) -> None:
    data = tmp_path / "dataset"
    (data / "shards").mkdir(parents=True)
    for i in range(FILES):
        (data / "shards" / f"{i:02d}.bin").write_bytes(os.urandom(FILE_BYTES))
    (data / "labels.csv").write_text("id,label\n1,cat\n")
    result = cli("executors", "run", box, str(job_context), "-q", "--", "sleep", "300")
    assert result.returncode == 0, result.stderr.decode()
    job = result.stdout.decode().strip()
    try:
        up = _peak_rss_mib(cli, "executors", "cp", box, str(data), f"{job}:/workspace")
        back = tmp_path / "back"
        down = _peak_rss_mib(cli, "executors", "cp", box, f"{job}:/workspace", str(back))
        assert _digests(back) == _digests(data)  # /workspace did not exist: data became it
        assert up < PEAK_RSS_LIMIT_MIB and down < PEAK_RSS_LIMIT_MIB, (up, down)

        # `-`: a tar on stdout, and one on stdin into an existing folder.
        listing = cli("executors", "cp", box, f"{job}:/workspace/labels.csv", "-")
        assert listing.returncode == 0, listing.stderr.decode()
        tar_path = tmp_path / "one.tar"
        tar_path.write_bytes(listing.stdout)
        with tarfile.open(tar_path) as tar:
            assert tar.getnames() == ["labels.csv"]
        pushed = cli("executors", "cp", box, "-", f"{job}:/workspace/shards", input=listing.stdout)
        assert pushed.returncode == 0, pushed.stderr.decode()
        again = cli("executors", "cp", box, f"{job}:/workspace/shards/labels.csv", "-")
        assert again.stdout == listing.stdout

        missing = cli("executors", "cp", box, f"{job}:/nowhere", str(tmp_path / "x"))
        assert missing.returncode == 3
        assert missing.stderr.decode().startswith(f"radops: error: no '/nowhere' in job {job}")
    finally:
        cli("executors", "rm", box, job, "--force")
