"""A command on the machine attached to this process's own stdout and stderr (and stdin, if
asked): what `exec` without a terminal does over SSH."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from radops.errors import RadopsError

if TYPE_CHECKING:
    from radops.ssh.remote import SSHConnection


def without_stdin(conn: SSHConnection, argv: list[str]) -> int:
    """Run `argv`; its output to this process's as it comes; its exit status."""
    status = b"1"
    for stream, chunk in conn.execute(argv, None):
        if stream == "exit":
            status = chunk
        else:
            _write(stream, chunk)
    return int(status)


def with_stdin(conn: SSHConnection, argv: list[str]) -> int:
    """Run `argv` with this process's stdin. stdin is fed from its own thread while output is
    read here, so a command that answers as it reads (a REPL, `cat`) never waits on a full
    window either way."""
    with conn.direct.session() as process:
        process.start(argv)

        def feed() -> None:
            try:
                for chunk in _stdin_chunks():
                    process.write(chunk)
                process.close_stdin()
            except (RadopsError, OSError):
                pass  # the command ended first: its exit status says what happened

        threading.Thread(target=feed, name="radops-exec-stdin", daemon=True).start()
        for stream, chunk in process.output():
            _write(stream, chunk)
        return process.exit_status()


def _stdin_chunks() -> Iterator[bytes]:
    """This process's stdin as it arrives (a read returns what is there, up to 64 KiB)."""
    while chunk := os.read(sys.stdin.fileno(), 1 << 16):
        yield chunk


def _write(stream: str, chunk: bytes) -> None:
    out = sys.stdout if stream == "stdout" else sys.stderr
    out.buffer.write(chunk)
    out.buffer.flush()
