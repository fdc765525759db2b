"""The client side of a shared connection: probe it, retire it, run a command through it, and
start one in the background."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from radops.errors import EngineUnreachableError, lost_connection
from radops.ssh.mux import protocol
from radops.ssh.mux.sockets import connect

if TYPE_CHECKING:
    from radops.ssh.config import HostSpec
    from radops.ssh.connection import RemoteOutput

# Longer than the server's own wait to open a session (radops.ssh.connection.CONNECT_TIMEOUT_S).
START_TIMEOUT_S = 30.0
SERVER_MODULE = "radops.ssh.mux.server"


class MuxUnavailable(Exception):
    """No shared connection could start the command; the caller connects itself."""


def probe(path: Path) -> bool:
    """Does a shared connection answer at `path`?"""
    try:
        connect(path).close()
    except OSError:
        return False
    return True


def retire(path: Path) -> None:
    """Ask the server at `path`, if any, to take no more commands (those under way finish)."""
    with contextlib.suppress(OSError):
        sock = connect(path)
        with sock:
            protocol.send(sock, protocol.RETIRE)


class MuxCommand:
    """One remote command through the shared connection.

    Creating it sends the argv and waits until the remote command runs; it raises
    MuxUnavailable if that did not happen (nothing ran: the caller connects itself).
    """

    def __init__(self, path: Path, argv: list[str], display: str) -> None:
        self.display = display
        try:
            self.sock = connect(path)
        except OSError as e:  # no server: nothing ran
            raise MuxUnavailable(str(e)) from e
        try:
            protocol.send(self.sock, protocol.REQUEST, protocol.encode_request(argv))
            self.reader = self.sock.makefile("rb")
            taken = protocol.read_frame(self.reader)
        except OSError as e:  # the server did not take the request: nothing ran
            self._close()
            raise MuxUnavailable(str(e)) from e
        if taken is None or taken[0] != protocol.TAKEN:
            self._close()
            raise MuxUnavailable(taken[1].decode(errors="replace") if taken else "no answer")
        self._wait_started()

    def _wait_started(self) -> None:
        try:
            self.sock.settimeout(START_TIMEOUT_S)
            started = protocol.read_frame(self.reader)
            self.sock.settimeout(None)  # then output may take hours (logs --follow)
        except OSError:
            started = None
        if started is not None and started[0] == protocol.NOT_STARTED:
            self._close()
            raise MuxUnavailable(started[1].decode(errors="replace"))
        if started is None or started[0] != protocol.STARTED:
            # The server took the request and may have started the command: running it again
            # could start a job twice, so this is an error, not a fallback.
            self._close()
            raise EngineUnreachableError(
                f"the shared SSH connection to {self.display} failed while starting a command",
                "Check with `radops executors jobs`, then run it again; "
                "`pkill -f radops.ssh.mux` ends stuck shared connections.",
            )

    def output(self, stdin: Iterable[bytes] | None) -> RemoteOutput:
        """Send stdin, then yield ("stdout"|"stderr", bytes)... and ("exit", b"<status>")."""
        try:
            try:
                for chunk in stdin or ():
                    protocol.send_chunked(self.sock, protocol.STDIN, chunk)
                protocol.send(self.sock, protocol.STDIN_END)
            except OSError as e:
                raise lost_connection(self.display) from e
            while (frame := protocol.read_frame(self.reader)) is not None:
                kind, payload = frame
                if kind == protocol.EXIT:
                    yield "exit", payload
                    return
                yield ("stderr" if kind == protocol.STDERR else "stdout"), payload
            raise lost_connection(self.display)
        finally:
            self._close()

    def _close(self) -> None:
        """Close the socket now (its file object too, else the server sees no end)."""
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.close()
        self.sock.close()


def spawn(
    host: HostSpec,
    known_hosts: Path,
    path: Path,
    seconds: int,
    pinned: frozenset[str] = frozenset(),
) -> None:
    """Start the shared connection in the background; this command does not wait for it.
    It trusts only keys already known (and, with `pinned`, only those)."""
    settings = {
        "host": dataclasses.asdict(host),
        "known_hosts": str(known_hosts),
        "pinned": sorted(pinned),
        "socket": str(path),
        "seconds": seconds,
    }
    with contextlib.suppress(OSError):
        process = subprocess.Popen(
            [sys.executable, "-m", SERVER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not killed with this command's process group (Ctrl-C)
            close_fds=True,
            cwd="/",  # hold no directory of the user's busy
            env=_child_env(),
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(settings).encode())
        process.stdin.close()


def _child_env() -> dict[str, str]:
    """This environment, with this radops first on the import path (from "/" as cwd)."""
    here = str(Path(__file__).resolve().parents[3])
    paths = [here, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
