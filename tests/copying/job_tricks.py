"""What a real job can do to a second `cp` (links it leaves, a link replaced by a folder), and a
`cp` download cut off midway: shared by the local and the SSH executor's tests."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.copying.archives import tree
from tests.copying.side_by_side import Sides, one_line_error

# What the job leaves in /out: a checkpoint folder whose `latest` is an absolute link, a
# `model.pt` that is a link to a name beside the user's DEST, and `x -> ..`.
LEAVES_LINKS = (
    "mkdir -p /out/ckpt && echo 3 > /out/ckpt/epoch3.pt"
    " && ln -s /out/ckpt/epoch3.pt /out/ckpt/latest && ln -s victim.txt /out/model.pt"
    " && ln -s .. /out/x"
)
BIG_FILE_MB = 500


def job_exec(sides: Sides, script: str) -> None:
    """The job changes its own files (through `radops executors exec`)."""
    result = sides.radops(
        ["executors", "exec", sides.executor, sides.job, "--", "sh", "-c", script]
    )
    assert result.returncode == 0, result.stderr


def check_link_tricks(sides: Sides, base: Path) -> None:
    home = base / "user-files"
    home.mkdir()
    (home / "victim.txt").write_text("victim\n")
    (home / ".bashrc").write_text("mine\n")

    def cp(src: str, dest: Path) -> subprocess.CompletedProcess[bytes]:
        return sides.radops(["executors", "cp", sides.executor, f"{sides.job}:{src}", str(dest)])

    job_exec(sides, LEAVES_LINKS)
    # A link comes as a link; then the job puts a real file there: the second cp replaces the
    # link, and victim.txt, where the link pointed, stays as it was.
    assert cp("/out/model.pt", home / "model.pt").returncode == 0
    assert os.readlink(home / "model.pt") == "victim.txt"
    job_exec(sides, "rm /out/model.pt && echo real > /out/model.pt")
    second = cp("/out/model.pt", home / "model.pt")
    assert second.returncode == 0, second.stderr
    assert not (home / "model.pt").is_symlink() and (home / "model.pt").read_text() == "real\n"
    assert (home / "victim.txt").read_text() == "victim\n"
    # A checkpoint folder comes whole, its absolute link as a link.
    assert cp("/out/ckpt", home / "ckpt").returncode == 0
    assert tree(home / "ckpt") == {"epoch3.pt": "file:3\n", "latest": "link:/out/ckpt/epoch3.pt"}
    # `SRC/.` brings `x -> ..`; the job then makes x a folder holding a .bashrc: the second
    # cp is refused in one line, and nothing changes, in DEST or beside it.
    assert cp("/out/.", home / "out").returncode == 0
    assert os.readlink(home / "out" / "x") == ".."
    job_exec(sides, "rm /out/x && mkdir /out/x && echo owned > /out/x/.bashrc")
    before = tree(home)
    refused = cp("/out/.", home / "out")
    assert refused.returncode != 0 and one_line_error(refused), refused.stderr
    assert "cannot overwrite symbolic link" in refused.stderr.decode()
    assert tree(home) == before and (home / ".bashrc").read_text() == "mine\n"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # moved into place meanwhile
        return 0


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def interrupted_download(
    sides: Sides,
    popen: Callable[..., subprocess.Popen[bytes]],
    dest: Path,
    cut: Callable[[subprocess.Popen[bytes]], None],
) -> tuple[int, str]:
    """`cp JOB:/out/big.bin DEST` over an existing DEST, cut (by `cut`) once part of it has
    arrived, with radops stopped meanwhile so the cut lands mid-transfer. DEST must stay
    byte-identical and no staging folder may be left; (exit code, stderr)."""
    make = f"dd if=/dev/zero of=/out/big.bin bs=1M count={BIG_FILE_MB}"
    job_exec(sides, f"mkdir -p /out && [ -f /out/big.bin ] || {make}")
    if not dest.exists():
        dest.write_bytes(os.urandom(8 << 20))
    before = _digest(dest)
    proc = popen("executors", "cp", sides.executor, f"{sides.job}:/out/big.bin", str(dest))
    deadline = time.monotonic() + 60
    while True:
        staged = [p for p in dest.parent.glob(".radops-cp-*/copy") if _size(p) > 20 << 20]
        if staged:
            break
        assert proc.poll() is None, f"cp ended before it could be cut: {proc.communicate()}"
        assert time.monotonic() < deadline, "nothing arrived in 60 s"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        assert _size(staged[0]) < BIG_FILE_MB << 20  # midway
        cut(proc)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    _, stderr = proc.communicate(timeout=60)
    assert _digest(dest) == before
    assert list(dest.parent.glob(".radops-cp-*")) == []
    return proc.returncode, stderr.decode()


def check_a_name_that_is_not_utf8(sides: Sides, base: Path) -> None:
    """A file whose name is not UTF-8 (a byte 0xfe), made by the job: copying it alone, docker
    sends an empty archive on every kind, and radops says why in one line (not a
    UnicodeEncodeError, not "nothing to copy"); its folder copies with the name's bytes kept."""
    job_exec(sides, 'mkdir -p /odd && printf data > "/odd/$(printf "file\\376.txt")"')
    name = os.fsdecode(b"file\xfe.txt")
    alone = sides.radops(["executors", "cp", sides.executor, f"{sides.job}:/odd/{name}", str(base)])
    assert alone.returncode == 2 and one_line_error(alone), alone.stderr
    lines = alone.stderr.decode().splitlines()
    assert (
        lines[0] == r"radops: error: docker cannot copy '/odd/file\udcfe.txt' alone: "
        "its name is not UTF-8 text"
    ), lines
    assert lines[1].startswith("hint: Copy the folder that holds it instead (JOB:/odd)"), lines
    folder = sides.radops(["executors", "cp", sides.executor, f"{sides.job}:/odd", str(base)])
    assert folder.returncode == 0, folder.stderr
    assert (base / "odd" / name).read_bytes() == b"data"
    assert os.listdir(os.fsencode(base / "odd")) == [b"file\xfe.txt"]
