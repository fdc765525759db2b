"""`cp` on the local engine, end to end with real jobs: docker cp's rules side by side with the
real `docker cp`, links a job leaves for a second cp, and a download interrupted midway."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from radops.copying.names import parts_under, root_of
from tests.cli_process import radops
from tests.copying import side_by_side as sbs
from tests.copying.job_tricks import (
    check_a_name_that_is_not_utf8,
    check_link_tricks,
    interrupted_download,
)
from tests.rig import DOCKER


def _radops(args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    result: subprocess.CompletedProcess[bytes] = radops(*args, binary=True)
    return result


def _docker(args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([DOCKER, *args], capture_output=True, timeout=120, check=False)


def _popen(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "radops", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def sides(tools_context: Path, start_job: Callable[..., str]) -> sbs.Sides:
    job = start_job(tools_context, "sleep", "600")
    return sbs.Sides(radops=_radops, docker=_docker, executor="local", job=job)


def test_cp_from_a_job_matches_docker_cp(sides: sbs.Sides, tmp_path: Path) -> None:
    made = _docker(["exec", sides.container, "sh", "-c", sbs.JOB_FILES])
    assert made.returncode == 0, made.stderr
    assert sbs.compare_downloads(sides, tmp_path) == []


def test_cp_to_a_job_matches_docker_cp(sides: sbs.Sides, tmp_path: Path) -> None:
    assert sbs.compare_uploads(sides, tmp_path) == []


def test_links_a_job_leaves_are_copied_as_links_never_written_through(
    sides: sbs.Sides, tmp_path: Path
) -> None:
    check_link_tricks(sides, tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_an_interrupted_download_leaves_dest_as_it_was(
    sides: sbs.Sides, tmp_path: Path, signum: int
) -> None:
    dest = tmp_path / "precious.bin"
    code, stderr = interrupted_download(sides, _popen, dest, lambda proc: os.kill(proc.pid, signum))
    # 130, as for Ctrl-C anywhere (Typer turns KeyboardInterrupt into a silent exit 130).
    assert code == 130 and "Traceback" not in stderr, stderr


def test_the_root_radops_expects_is_the_one_docker_sends(sides: sbs.Sides) -> None:
    """For every spelling of SRC, the archive's first entry is the root `root_of` names."""
    made = _docker(["exec", sides.container, "sh", "-c", sbs.JOB_FILES])
    assert made.returncode == 0, made.stderr
    spellings = (
        "/s/dir", "/s/dir/", "/s/dir//", "/s//dir", "/s/dir/.", "/s/dir/./", "/s/dir/sub/..",
        "/s/dir/sub/../a", "/s/ldir/", "/s/ldir/.", "/s/lfile", "s/dir", "s/dir/.", "/", "//",
        "/.", ".", "..", "/s/..",
    )  # fmt: skip
    for src in spellings:
        result = _docker(["cp", f"{sides.container}:{src}", "-"])
        assert result.returncode == 0, (src, result.stderr)
        with tarfile.open(fileobj=io.BytesIO(result.stdout), mode="r|") as tar:
            first = tar.next()
        assert first is not None and parts_under(first.name, root_of(src)) == [], (src, first)


def test_a_file_name_that_is_not_utf8(sides: sbs.Sides, tmp_path: Path) -> None:
    check_a_name_that_is_not_utf8(sides, tmp_path)
