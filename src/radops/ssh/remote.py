"""`SSHConnection`: the one object executors use to run commands on a host over SSH.

Each command goes through the host's shared connection when one answers (radops.ssh.mux),
else through a direct connection of this process's own; a command that connected itself
starts a shared connection for later commands when it closes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from radops.ssh.config import HostSpec, SSHTarget
from radops.ssh.connection import DirectConnection, RemoteOutput
from radops.ssh.hostkeys import ConfirmHostKey, HostKeyPolicy, fingerprint

if TYPE_CHECKING:
    import paramiko


class SSHConnection:
    """Remote commands on one host, as argv lists (quoted once, in radops.ssh.connection)."""

    def __init__(
        self,
        target: SSHTarget | HostSpec,
        known_hosts: Path,
        confirm: ConfirmHostKey | None = None,
        trust_new_host_key: bool = False,
        persist: int = 0,
        pinned: frozenset[str] = frozenset(),
        trust_new_hops: bool | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        self.pinned = pinned
        # Put before every command's argv (e.g. a wrapper that marks the machine as in use).
        self.prefix = list(prefix)
        policy = HostKeyPolicy(known_hosts, confirm, trust_new_host_key, pinned, trust_new_hops)
        self.direct = DirectConnection(target, policy)
        self.label = target.host if isinstance(target, HostSpec) else target.alias
        # persist > 0 (for a HostSpec): commands go through a shared connection if one serves
        # this host, and a direct connection starts one for later commands.
        self.persist = persist
        self._host = target if isinstance(target, HostSpec) else None
        self._shared: Path | None = None
        if persist > 0 and self._host is not None:
            from radops.ssh.mux.sockets import socket_path

            identity = [*self._host.shared_identity(), sorted(pinned)]
            self._shared = socket_path(identity, known_hosts)
        self._shared_live: bool | None = None  # None: not tried yet

    @property
    def target(self) -> SSHTarget:
        """Where this connects, ~/.ssh/config applied (resolved on first use)."""
        return self.direct.target

    @property
    def known_hosts(self) -> Path:
        return self.direct.policy.known_hosts

    def open(self) -> None:
        """Make sure commands can run: a live shared connection, else connect now."""
        if self.direct.connected:
            return
        if self._shared is not None and self._shared_live is None:
            from radops.ssh.mux.client import probe

            self._shared_live = probe(self._shared)
            if self._shared_live:
                return
        self.direct.open()

    def login(self) -> None:
        """Connect directly now (host key check and login), whether or not a shared connection
        serves this host, and retire that shared connection: one made after this login
        replaces it, and picks up what changed on the machine (groups, for one)."""
        self.direct.open()
        if self._shared is not None:
            from radops.ssh.mux.client import retire

            retire(self._shared)
            self._shared_live = False

    def host_key(self) -> paramiko.PKey:
        """The host key a direct connection verified (it connects if it has not yet)."""
        return self.direct.host_key()

    def host_key_fingerprint(self) -> str:
        return fingerprint(self.host_key())

    def close(self) -> None:
        connected = self.direct.connected
        self.direct.close()
        if connected and self._shared is not None:
            from radops.ssh.mux.client import probe, spawn

            if not probe(self._shared):
                assert self._host is not None
                spawn(self._host, self.known_hosts, self._shared, self.persist, self.pinned)

    def execute(self, argv: Sequence[str], stdin: Iterable[bytes] | None = None) -> RemoteOutput:
        """Run argv with `stdin` sent to it: ("stdout"|"stderr", bytes)..., ("exit", b"N")."""
        argv = [*self.prefix, *argv]
        shared = self._shared_live is not False and not self.direct.connected
        if self._shared is not None and shared:
            from radops.ssh.mux.client import MuxCommand, MuxUnavailable

            try:
                command = MuxCommand(self._shared, list(argv), self.label)
            except MuxUnavailable:
                self._shared_live = False  # gone or broken: connect directly from now on
            else:
                self._shared_live = True
                return command.output(stdin)
        return self.direct.execute(argv, stdin)

    def run(self, argv: Sequence[str], stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Run argv; return (exit status, stdout, stderr). For small outputs."""
        out: list[bytes] = []
        err: list[bytes] = []
        status = b""
        for stream, data in self.execute(argv, None if stdin is None else [stdin]):
            if stream == "exit":
                status = data
            else:
                (err if stream == "stderr" else out).append(data)
        return int(status), b"".join(out), b"".join(err)

    def stream(self, argv: Sequence[str]) -> RemoteOutput:
        """Yield ("stdout"|"stderr", bytes) as they arrive, then ("exit", b"<exit status>")."""
        yield from self.execute(argv, None)

    def run_with_input(self, argv: Sequence[str], chunks: Iterable[bytes]) -> tuple[int, bytes]:
        """Run argv with `chunks` streamed to its stdin; return (exit status, stderr + stdout)."""
        output: list[bytes] = []
        status = b""
        for stream, data in self.execute(argv, chunks):
            if stream == "exit":
                status = data
            else:
                output.append(data)
        return int(status), b"".join(output)
