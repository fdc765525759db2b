"""`cp` over SSH against what a job, a remote machine or the network can do: docker cp's rules
side by side with the real `docker cp` on the rig's engine, links a real job leaves for a second
cp, a hostile remote `docker` sending crafted archives, and a 500 MB download cut off midway by
Ctrl-C, by a dropped connection (the session's sshd killed) and by the remote docker dying."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests import rig
from tests.copying import side_by_side as sbs
from tests.copying.archives import archive, tree
from tests.copying.job_tricks import (
    check_a_name_that_is_not_utf8,
    check_link_tricks,
    interrupted_download,
)
from tests.ssh.conftest import CLI

# The rules once each over SSH (the placing code is the local engine's; the stream is not).
SSH_DOWN_CASES = (
    *(("/s/file", state) for state in ("missing", "missing/", "dir", "file", "file/")),
    *(("/s/dir", state) for state in ("missing", "missing/", "dir", "file")),
    ("/s/dir/.", "dir"), ("/s/dir/.", "missing"), ("/s/ldir/", "dir"), ("/s/lfile", "dir"),
    ("/s/file", "linkfile"), ("/s/dir", "linkdir"),
)  # fmt: skip


@pytest.fixture
def sides(cli: CLI, box: str, job_context: Path, remote: rig.RemoteHost) -> Iterator[sbs.Sides]:
    started = cli("executors", "run", box, str(job_context), "-q", "--", "sleep", "600")
    assert started.returncode == 0, started.stderr.decode()
    job = started.stdout.decode().strip()

    def radops(args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        return cli(*args)

    def docker(args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
        return remote.docker_bytes(*args)

    try:
        yield sbs.Sides(radops=radops, docker=docker, executor=box, job=job)
    finally:
        cli("executors", "rm", box, job, "--force")


def test_cp_over_ssh_matches_docker_cp_both_ways(sides: sbs.Sides, tmp_path: Path) -> None:
    made = sides.docker(["exec", sides.container, "sh", "-c", sbs.JOB_FILES])
    assert made.returncode == 0, made.stderr
    assert sbs.compare_downloads(sides, tmp_path / "down", SSH_DOWN_CASES) == []
    (tmp_path / "up").mkdir()
    assert sbs.compare_uploads(sides, tmp_path / "up") == []


def test_links_a_job_leaves_are_copied_as_links_never_written_through(
    sides: sbs.Sides, tmp_path: Path
) -> None:
    check_link_tricks(sides, tmp_path)


# A remote whose `docker cp` answers with a crafted archive (everything else is the real one).
FAKE_DOCKER = '#!/bin/sh\nif [ "$1" = cp ]; then cat {archive}; exit 0; fi\nexec {docker} "$@"\n'


def test_a_hostile_remote_cannot_write_outside_dest(
    cli: CLI, sides: sbs.Sides, tmp_path: Path
) -> None:
    evil = tmp_path / "evil.tar"
    fake = tmp_path / "fake-docker"
    fake.write_text(FAKE_DOCKER.format(archive=evil, docker=rig.DOCKER))
    fake.chmod(0o755)
    added = cli("executors", "add", "--name", "evil", "--hostname", "rigbox",
                "--docker-path", str(fake))  # fmt: skip
    assert added.returncode == 0, added.stderr.decode()
    home = tmp_path / "user-files"  # tmp_path/home is the SSH HOME
    home.mkdir()
    (home / ".bashrc").write_text("mine\n")
    (home / "precious.bin").write_bytes(b"old" * 1000)
    whole = archive(("precious.bin", "file", os.urandom(200_000)))
    cases = [
        ("/x", "out", archive(("out/../.bashrc", "file", "owned\n")), "'out/../.bashrc'"),
        ("/x", "out", archive(("x", "dir", ""), ("x/../.bashrc", "file", "owned\n")), "'..'"),
        ("/x", ".", archive(("x", "dir", ""), ("/root/.bashrc", "file", "owned\n")), "absolute"),
        ("/out", "d", archive(("out", "dir", ""), ("out/l", "sym", ".."),
                              ("out/l/.bashrc", "file", "owned\n")), "through the link 'l'"),
        ("/x", "out", archive(("x", "dir", ""), ("x/\x1b]0;owned\x07", "chr", "")),
         "'x/\\x1b]0;owned\\x07'"),  # the remote's text is shown escaped
        ("/out/precious.bin", "precious.bin", whole[: len(whole) // 2], "cut short"),
    ]  # fmt: skip
    for source, dest, data, says in cases:
        evil.write_bytes(data)
        before = tree(home)
        result = cli("executors", "cp", "evil", f"{sides.job}:{source}", str(home / dest))
        stderr = result.stderr.decode()
        assert result.returncode == 1 and sbs.one_line_error(result), stderr
        assert says in stderr.splitlines()[0] and "\x1b" not in stderr, stderr
        assert tree(home) == before, (source, dest)


def _children(pid: int) -> list[tuple[int, str, str]]:
    """(pid, command name, command line) of every process below `pid`."""
    parents: dict[int, list[int]] = {}
    names: dict[int, tuple[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
        names[int(entry.name)] = (comm, line)
    found, pending = [], [pid]
    while pending:
        for child in parents.get(pending.pop(), []):
            found.append((child, *names[child]))
            pending.append(child)
    return found


def _rig_sshd(remote: rig.RemoteHost) -> int:
    pids = [p.pid for p in remote.processes if "sshd" in os.path.basename(str(p.args[0]))]
    assert len(pids) == 1, remote.processes
    return pids[0]


def _kill(remote: rig.RemoteHost, which: Callable[[str, str], bool]) -> Callable[..., None]:
    def cut(proc: subprocess.Popen[bytes]) -> None:
        targets = [pid for pid, comm, line in _children(_rig_sshd(remote)) if which(comm, line)]
        assert targets, _children(_rig_sshd(remote))
        for pid in targets:
            os.kill(pid, signal.SIGKILL)

    return cut


CP_HINT = "The copy did not finish; run the same cp again once the machine answers (`radops executors check box`)."  # noqa: E501


@pytest.mark.parametrize("persist", ["0", "1"])
def test_a_connection_killed_during_an_upload_is_lost_the_ssh_connection(
    cli: CLI, sides: sbs.Sides, remote: rig.RemoteHost, tmp_path: Path, persist: str
) -> None:
    # Directly, and through a shared connection: one line, exit 5, a hint for cp (not run's).
    cli.env["RADOPS_SSH_PERSIST"] = persist
    if persist == "1":  # a shared connection serves the cp
        assert cli("executors", "jobs", sides.executor).returncode == 0
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        for _ in range(300):
            f.write(os.urandom(1 << 20))
    proc = cli.popen("executors", "cp", sides.executor, str(big), f"{sides.job}:/job/")
    deadline = time.monotonic() + 60
    while not any(comm == "docker" for _, comm, _ in _children(_rig_sshd(remote))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the remote docker cp never started"
        time.sleep(0.01)
    time.sleep(0.3)  # midway
    _kill(remote, lambda comm, line: comm.startswith("sshd"))(proc)
    _, stderr = proc.communicate(timeout=60)
    # (progress lines off a terminal, every 5 s, may come first; then the error, nothing else)
    lines = [line for line in stderr.decode().splitlines() if not line.startswith("Copying ")]
    assert proc.returncode == 5, stderr
    assert lines[0].startswith("radops: error: lost the SSH connection to "), stderr
    assert lines[1:] == [f"hint: {CP_HINT}"], stderr


@pytest.mark.parametrize("cut", ["ctrl-c", "sshd killed", "remote docker killed"])
def test_an_interrupted_download_leaves_dest_as_it_was(
    cli: CLI, sides: sbs.Sides, remote: rig.RemoteHost, tmp_path: Path, cut: str
) -> None:
    how = {
        "ctrl-c": lambda proc: os.kill(proc.pid, signal.SIGINT),
        "sshd killed": _kill(remote, lambda comm, line: comm.startswith("sshd")),
        "remote docker killed": _kill(
            remote, lambda comm, line: comm == "docker" and f" cp {sides.container}:" in line
        ),
    }[cut]
    code, stderr = interrupted_download(sides, cli.popen, tmp_path / "precious.bin", how)
    if cut == "ctrl-c":
        assert code == 130 and "Traceback" not in stderr, stderr
    else:
        lines = stderr.splitlines()
        assert code not in (0, 130) and lines[0].startswith("radops: error: "), stderr
        assert len(lines) <= 2, stderr
    if cut == "sshd killed":
        assert code == 5, stderr
        assert lines[0].startswith("radops: error: lost the SSH connection to "), stderr
        assert lines[1] == f"hint: {CP_HINT}", stderr


def test_a_file_name_that_is_not_utf8(sides: sbs.Sides, tmp_path: Path) -> None:
    check_a_name_that_is_not_utf8(sides, tmp_path)
