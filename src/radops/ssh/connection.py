"""One direct SSH connection (through any ProxyJump hops) and the remote processes run on it.

Every remote command line is made here, once (`command_line`): the argv is quoted for `sh`
with `shlex.join`, and what the remote login shell sees is a fixed `sh -c` wrapper around that
text in base64, so a login shell that is not POSIX (fish, csh) passes it through unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import logging
import os
import select
import shlex
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from radops.errors import EngineUnreachableError
from radops.ssh.config import HostSpec, SSHTarget, load_paramiko
from radops.ssh.errors import lost_connection, ssh_errors
from radops.ssh.hostkeys import HostKeyPolicy, key_is_known

if TYPE_CHECKING:
    import paramiko

CONNECT_TIMEOUT_S = 15
KEEPALIVE_S = 30
_CHUNK = 1 << 16
_COALESCE_S = 0.002

# What the remote says when it cannot decode a command (no `base64`): never a silent success.
NO_BASE64 = "radops: this machine needs sh and base64 (coreutils or busybox) to run commands"
OutputKind = Literal["stdout", "stderr", "exit"]
# A remote command's output: ("stdout"|"stderr", bytes)... then ("exit", b"<status>").
RemoteOutput = Iterator[tuple[OutputKind, bytes]]


class RemoteProcess:
    """A session channel on the connection: start one command on it, feed its stdin, read its
    stdout and stderr as they arrive, then its exit status. Use it as a context manager."""

    def __init__(self, channel: paramiko.Channel, target: SSHTarget) -> None:
        self.channel = channel
        self.target = target

    def start(self, argv: Sequence[str]) -> None:
        """Run argv on this channel (see `command_line`). A long argv goes as stdin's first
        line instead (`stdin_command_line`): a command line is one argument of the remote
        login shell, which Linux caps at 128 KiB."""
        payload = _payload(argv)
        with ssh_errors(self.target):
            if len(payload) <= INLINE_ARGV_MAX:
                self.channel.exec_command(_decode_and_exec(f"echo {payload}"))  # command_line
            else:
                self.channel.exec_command(stdin_command_line())
                self.channel.sendall(payload.encode() + b"\n")

    def write(self, data: bytes) -> None:
        with ssh_errors(self.target):
            self.channel.sendall(data)

    def close_stdin(self) -> None:
        with ssh_errors(self.target):
            self.channel.shutdown_write()

    def output(self) -> Iterator[tuple[Literal["stdout", "stderr"], bytes]]:
        """stdout and stderr chunks as they arrive, until the command closes both."""
        channel = self.channel
        fd = channel.fileno()  # readable when either stream has data
        while True:
            got = 0
            while channel.recv_ready():
                with ssh_errors(self.target):  # a dropped connection: paramiko's EOFError
                    data = channel.recv(_CHUNK)
                got += len(data)
                yield "stdout", data
            while channel.recv_stderr_ready():
                with ssh_errors(self.target):
                    data = channel.recv_stderr(_CHUNK)
                got += len(data)
                yield "stderr", data
            if channel.eof_received and not (channel.recv_ready() or channel.recv_stderr_ready()):
                return
            if channel.closed:
                return
            if not got:
                select.select([fd], [], [], 1.0)
            elif got < _CHUNK // 4:
                # Output is arriving in small SSH packets: let a few more land before the next
                # read, so a big log costs thousands of reads and writes, not hundreds of
                # thousands.
                time.sleep(_COALESCE_S)

    def exit_status(self) -> int:
        """The command's exit status; EngineUnreachableError if the connection dropped first."""
        status = self.channel.recv_exit_status()
        if status == -1:  # the channel closed without one
            raise lost_connection(self.target)
        return status

    def close(self) -> None:
        # On a connection that dropped, paramiko raises EOFError: nothing is left to close, and
        # the error that brought us here is the one to show.
        with contextlib.suppress(EOFError, OSError):
            self.channel.close()

    def __enter__(self) -> RemoteProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


INLINE_ARGV_MAX = 32 * 1024  # base64 characters of an argv sent on the command line itself


def _payload(argv: Sequence[str]) -> str:
    return base64.b64encode(shlex.join(argv).encode("utf-8", "surrogateescape")).decode()


def _decode_and_exec(source: str, before: str = "") -> str:
    """`sh -c '...'`: decode the base64 that `source` prints, and exec it."""
    decode = f'c=$({source} | base64 -d) && [ -n "$c" ] || {{ echo "{NO_BASE64}" >&2; exit 127; }}'
    return f"sh -c '{before}{decode}; eval \"exec $c\"'"


def command_line(argv: Sequence[str]) -> str:
    """The remote command line that runs argv exactly, whatever the user's login shell.

    sshd hands a command line to the user's login shell, and shells disagree about quoting
    (fish reads `\\'` inside single quotes as an escape, so `shlex.join`'s quoting alone let an
    argument end its quotes there). Only base64's alphabet varies in this line, and the fixed
    parts mean the same to sh, bash, zsh, fish and csh: `sh` decodes the argv, quoted for sh, and
    execs it, so the command's stdin, stdout, stderr and exit status are its own.
    """
    return _decode_and_exec(f"echo {_payload(argv)}")


def stdin_command_line() -> str:
    """The fixed command line for an argv too long for a command line: `sh` reads it, base64,
    from stdin's first line (`read` takes no byte beyond it), then execs it as `command_line`
    does, so the rest of stdin is the command's own."""
    return _decode_and_exec('printf "%s" "$c"', before="IFS= read -r c || exit 127; ")


class DirectConnection:
    """One authenticated SSH connection of this process's own, opened on first use."""

    def __init__(self, target: SSHTarget | HostSpec, policy: HostKeyPolicy) -> None:
        self._host = target if isinstance(target, HostSpec) else None
        self._target = target if isinstance(target, SSHTarget) else None
        self.policy = policy
        self._clients: list[paramiko.SSHClient] = []

    @property
    def target(self) -> SSHTarget:
        """Where this connects, ~/.ssh/config applied (resolved on first use)."""
        if self._target is None:
            assert self._host is not None
            self._target = self._host.resolve()
        return self._target

    @property
    def connected(self) -> bool:
        return bool(self._clients)

    def open(self) -> None:
        """Connect now, through each ProxyJump host in turn (a no-op once connected)."""
        if self._clients:
            return
        target = self.target
        hops = target.hops()
        chain: list[paramiko.SSHClient] = []
        sock: Any = None
        try:
            for hop, nxt in zip(hops, [*hops[1:], target], strict=False):
                chain.append(self._connect_one(hop, sock, self.policy.for_hops()))
                try:
                    sock = _tunnel(chain[-1].get_transport(), hop, nxt.hostname, nxt.port)
                except ConnectionRefusedError as e:
                    raise EngineUnreachableError(
                        f"cannot connect to {nxt.display} through {hop.display}: connection refused"
                    ) from e
            chain.append(self._connect_one(target, sock, self.policy))
        except BaseException:
            for client in reversed(chain):
                client.close()
            raise
        self._clients = chain

    def _connect_one(
        self, target: SSHTarget, sock: Any, policy: HostKeyPolicy
    ) -> paramiko.SSHClient:
        load_paramiko()
        import paramiko

        _quiet_paramiko()
        client = paramiko.SSHClient()
        policy.load_into(client)
        client.set_missing_host_key_policy(policy)  # type: ignore[arg-type]
        try:
            with ssh_errors(target, connecting=True):
                client.connect(
                    target.hostname,
                    port=target.port,
                    username=target.username,
                    key_filename=target.key_files or None,  # type: ignore[arg-type]
                    timeout=CONNECT_TIMEOUT_S,
                    banner_timeout=CONNECT_TIMEOUT_S,
                    auth_timeout=CONNECT_TIMEOUT_S,
                    sock=sock,
                )
            transport = client.get_transport()
            assert transport is not None
            # A known key is checked too: revoked, or not the pinned one (accepted before).
            policy.check_key(target.hostname, transport.get_remote_server_key())
        except BaseException:
            client.close()
            raise
        transport.set_keepalive(KEEPALIVE_S)
        return client

    def _transport(self) -> paramiko.Transport:
        self.open()
        transport = self._clients[-1].get_transport()
        if transport is None or not transport.is_active():
            raise EngineUnreachableError(f"the SSH connection to {self.target.display} closed")
        return transport

    def is_active(self) -> bool:
        """Is the connection (already opened) still up?"""
        transport = self._clients[-1].get_transport() if self._clients else None
        return transport is not None and transport.is_active()

    def session(self) -> RemoteProcess:
        """A new session channel, on which nothing runs yet (`RemoteProcess.start`)."""
        with ssh_errors(self.target):
            channel = self._transport().open_session(timeout=CONNECT_TIMEOUT_S)
        return RemoteProcess(channel, self.target)

    def open_tunnel(self, host: str, port: int) -> paramiko.Channel:
        """A TCP stream to `host:port` as seen from the remote machine (port forwarding)."""
        channel: paramiko.Channel = _tunnel(self._transport(), self.target, host, port)
        return channel

    def listen_remote(self, handler: Callable[[paramiko.Channel], None]) -> int:
        """Have sshd listen on the remote machine's loopback, on a port it picks (returned);
        each connection made to it there reaches `handler` as a channel (radops.ssh.reverse)."""
        with ssh_errors(self.target):
            port: int = self._transport().request_port_forward(
                "127.0.0.1", 0, lambda channel, _origin, _server: handler(channel)
            )
        return port

    def stop_listening(self, port: int) -> None:
        """Close the remote listener of `listen_remote`."""
        if self.is_active():
            self._transport().cancel_port_forward("127.0.0.1", port)

    def host_key(self) -> paramiko.PKey:
        """The host key this connection verified."""
        return self._transport().get_remote_server_key()

    def verified_key_is_known(self, known: paramiko.HostKeys) -> bool:
        """Is the host key this connection verified in `known` for this host?"""
        return key_is_known(self.host_key(), self.target.known_host_name, known)

    def execute(self, argv: Sequence[str], stdin: Iterable[bytes] | None) -> RemoteOutput:
        """Run argv with `stdin` sent to it: ("stdout"|"stderr", bytes)..., ("exit", b"N")."""
        with self.session() as process:
            process.start(argv)
            for chunk in stdin or ():
                process.write(chunk)
            process.close_stdin()
            yield from process.output()
            yield "exit", str(process.exit_status()).encode()

    def close(self) -> None:
        for client in reversed(self._clients):
            client.close()
        self._clients = []


def _tunnel(transport: paramiko.Transport | None, via: SSHTarget, host: str, port: int) -> Any:
    """A direct-tcpip channel through `via`'s connection to host:port, as seen from `via`.
    sshd's "Connect failed" (nothing listens there) is ConnectionRefusedError, as a socket
    connecting there directly would say: the SSH connection itself is fine."""
    load_paramiko()
    import paramiko

    failed: paramiko.ChannelException | None = None
    with ssh_errors(via):
        assert transport is not None
        try:
            return transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0))
        except paramiko.ChannelException as e:
            if e.code != paramiko.common.OPEN_FAILED_CONNECT_FAILED:
                raise
            failed = e
    raise ConnectionRefusedError(
        errno.ECONNREFUSED, f"nothing listens on {host}:{port}"
    ) from failed


def _quiet_paramiko() -> None:
    """paramiko logs failed handshakes as tracebacks; radops reports them as one line instead."""
    log = logging.getLogger("paramiko")
    if not log.handlers and not os.environ.get("RADOPS_DEBUG"):
        log.addHandler(logging.NullHandler())
