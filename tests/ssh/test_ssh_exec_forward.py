"""`exec` and `forward` on the SSH executor, end to end through the rig's sshd: a command's
output, exit code and stdin; a real terminal (tests/terminal.py) with its window size and
Ctrl-C; and an HTTP server inside a job reached from here without publishing its port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import rig
from tests.ssh.conftest import CLI
from tests.terminal import Terminal


@pytest.fixture
def running_job(cli: CLI, box: str, job_context: Path) -> Iterator[str]:
    script = (
        "mkdir -p /www && echo served-from-the-job > /www/index.html && httpd -f -p 8000 -h /www"
    )
    result = cli("executors", "run", box, str(job_context), "-q", "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr.decode()
    job = result.stdout.decode().strip()
    yield job
    cli("executors", "rm", box, job, "--force")


def test_exec_output_exit_code_and_stdin(cli: CLI, box: str, running_job: str) -> None:
    result = cli("executors", "exec", box, running_job[:6], "--", "sh", "-c",
                 "echo out; echo err >&2; exit 7")  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
    piped = cli("executors", "exec", box, running_job, "-i", "--", "wc", "-c", input=b"x" * 300_000)
    assert (piped.returncode, piped.stdout.strip()) == (0, b"300000")
    no_tty = cli("executors", "exec", box, running_job, "-t", "--", "true")
    assert no_tty.returncode == 2 and b"-t needs a terminal" in no_tty.stderr


def _sleeping_in(remote: rig.RemoteHost, job: str) -> bool:
    """Does `sleep 300` run in the job's container (as its engine lists it)?"""
    top = remote.docker("top", f"radops-{job}")
    assert top.returncode == 0, top.stderr
    return "sleep 300" in top.stdout


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.2)


def test_exec_on_a_terminal_carries_window_size_and_ctrl_c(
    cli: CLI, box: str, running_job: str, remote: rig.RemoteHost
) -> None:
    term = Terminal(
        [sys.executable, "-m", "radops", "executors", "exec", box, running_job, "-it", "--", "sh"],
        cli.env,
        size=(31, 101),
    )
    term.expect("#")  # root's prompt in the job
    term.send("tty; stty size")
    term.expect("/dev/pts/")
    term.expect("31 101")  # this terminal's size, there
    term.send("sleep 300")
    _wait_for(lambda: _sleeping_in(remote, running_job), "sleep running in the job")
    os.write(term.master, b"\x03")  # Ctrl-C: to the remote sleep, not to radops
    _wait_for(lambda: not _sleeping_in(remote, running_job), "Ctrl-C ending the remote sleep")
    term.send("echo still-here; exit 5")
    term.expect("still-here")
    assert term.wait() == 5


def test_exec_in_an_ended_job_is_refused(cli: CLI, box: str, job_context: Path) -> None:
    result = cli("executors", "run", box, str(job_context), "-q", "--", "true")
    job = result.stdout.decode().strip()
    try:
        cli("executors", "logs", box, job, "--follow")
        refused = cli("executors", "exec", box, job, "--", "true")
        assert refused.returncode == 2
        assert refused.stderr.decode().startswith(f"radops: error: job {job} on 'box' is not run")
    finally:
        cli("executors", "rm", box, job, "--force")


def test_forward_to_a_port_nothing_listens_on_says_so_and_goes_on(
    cli: CLI, box: str, running_job: str
) -> None:
    proc = cli.popen("executors", "forward", box, running_job, "9:0")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        url = proc.stdout.readline().decode().split()[0]
        with pytest.raises(OSError):  # the connection here is closed at once
            urllib.request.urlopen(url, timeout=10).read()
        assert proc.stderr.readline() == b"Forwarding; Ctrl-C to stop.\n"
        line = proc.stderr.readline().decode()
        assert line == (
            "cannot reach port 9 of the job: nothing listens on port 9 in the job "
            "(a server there must listen on 0.0.0.0, not 127.0.0.1)\n"
        ), line
        assert proc.poll() is None  # forwarding goes on
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_forward_reaches_a_server_in_the_job_until_ctrl_c(
    cli: CLI, box: str, running_job: str
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "radops", "executors", "forward", box, running_job, "8000:0"],
        env=cli.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("http://127.0.0.1:") and f"port 8000 of job {running_job}" in line
        url = line.split()[0]
        body = b""
        for _ in range(50):  # httpd may still be starting in the job
            try:
                with urllib.request.urlopen(url + "/index.html", timeout=10) as response:
                    body = response.read()
                break
            except OSError:
                time.sleep(0.2)
        if not body:
            proc.kill()
            assert proc.stderr is not None
            raise AssertionError(f"never reached the job: {proc.stderr.read().decode()}")
        assert body == b"served-from-the-job\n"
        with urllib.request.urlopen(url + "/index.html", timeout=10) as response:
            assert response.read() == body  # a second connection through the same tunnel
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None and b"Stopped forwarding." in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
