"""The header line of the SSH executor's two-step scripts (logs, pull then run), found in what
arrived."""

from __future__ import annotations

import pytest

from radops.executors.header import Header
from radops.executors.ssh.scripts import (
    LOGS_SCRIPT,
    PULL_RUN_SCRIPT,
    checked_logs_argv,
    pull_then_run_argv,
)


def _script_header(received: bytes) -> tuple[bytes, bytes] | None:
    """(header line, what follows it), as the scripts wrote them."""
    found = Header.find(received)
    if found is None:
        return None
    line = b"radops:ok" if found.ok else b"radops:error %d" % found.status
    return line, found.rest


@pytest.mark.parametrize(
    ("received", "expected"),
    [
        (b"", None),
        (b"radops:o", None),  # the line is not complete yet
        (b"radops:ok\n", (b"radops:ok", b"")),
        (b"radops:ok\nfirst job line\nsecond", (b"radops:ok", b"first job line\nsecond")),
        (b"Welcome to gpu1!\nradops:ok\nout\n", (b"radops:ok", b"out\n")),  # a chatty shell
        (b"radops:error 1\nNo such container: x\n", (b"radops:error 1", b"No such container: x\n")),
        (b"radops:okay\n", None),  # not the header
        (b"\n\n\nradops:ok\nsha256:ab\n", (b"radops:ok", b"sha256:ab\n")),  # a build's heartbeats
    ],
)
def test_header(received: bytes, expected: tuple[bytes, bytes] | None) -> None:
    assert _script_header(received) == expected


def test_the_script_gets_every_value_as_its_own_argument() -> None:
    argv = checked_logs_argv("/usr/bin/docker", "radops-0123456789ab", True, 5, False)
    assert argv == [
        "sh", "-c", LOGS_SCRIPT, "radops-logs", "/usr/bin/docker", "radops-0123456789ab",
        "/usr/bin/docker", "logs", "--follow", "--tail", "5", "radops-0123456789ab",
    ]  # fmt: skip


def test_pull_then_run_passes_the_run_argv_through() -> None:
    run = ["/usr/bin/docker", "run", "--pull", "never", "-d", "reg/x:1", "sh", "-c", "echo $1"]
    argv = pull_then_run_argv("/usr/bin/docker", "reg/x:1", run)
    assert argv == [
        "sh", "-c", PULL_RUN_SCRIPT, "radops-run", "/usr/bin/docker", "reg/x:1",
        "/usr/bin/docker", "run", "--pull", "never", "-d", "reg/x:1", "sh", "-c", "echo $1",
    ]  # fmt: skip
