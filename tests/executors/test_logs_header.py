"""The header line of the SSH executor's checked `docker logs` script, found in what arrived."""

from __future__ import annotations

import pytest

from radops.executors._docker_argv import LOGS_SCRIPT, checked_logs_argv
from radops.executors.ssh import _logs_header


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
    ],
)
def test_header(received: bytes, expected: tuple[bytes, bytes] | None) -> None:
    assert _logs_header(received) == expected


def test_the_script_gets_every_value_as_its_own_argument() -> None:
    argv = checked_logs_argv("/usr/bin/docker", "radops-0123456789ab", True, 5, False)
    assert argv == [
        "sh", "-c", LOGS_SCRIPT, "radops-logs", "/usr/bin/docker", "radops-0123456789ab",
        "logs", "--follow", "--tail", "5", "radops-0123456789ab",
    ]  # fmt: skip
