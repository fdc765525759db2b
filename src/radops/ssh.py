"""SSH connections that behave like OpenSSH: ssh config, agent and default keys, known host keys.

One `SSHConnection` per radops command; every remote command goes through `run`/`stream`, which
take an argv list and quote it once, here, with `shlex.join`.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import hashlib
import os
import re
import select
import shlex
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radops.errors import EngineUnreachableError, HostKeyError, RadopsError

if TYPE_CHECKING:
    import paramiko

# (host, key type, SHA256 fingerprint) -> trust this key?
ConfirmHostKey = Callable[[str, str, str], bool]

CONNECT_TIMEOUT_S = 15
KEEPALIVE_S = 30
_CHUNK = 1 << 16
_COALESCE_S = 0.002


@dataclass(frozen=True)
class SSHTarget:
    """Where to connect, after ~/.ssh/config has been applied."""

    alias: str
    hostname: str
    port: int
    username: str
    key_files: list[str] = field(default_factory=list)
    proxy_jump: str | None = None

    @property
    def display(self) -> str:
        port = "" if self.port == 22 else f":{self.port}"
        return f"{self.username}@{self.hostname}{port}"

    def ssh_argv(self, known_hosts: Path | None = None) -> list[str]:
        """The OpenSSH command line that reaches the same place (for `connect`), trusting the
        host keys radops trusts (`known_hosts`, radops' own file) as well as the user's."""
        argv = ["ssh", "-p", str(self.port)]
        if known_hosts is not None:
            files = f"{Path('~/.ssh/known_hosts').expanduser()} {known_hosts}"
            argv += ["-o", f"UserKnownHostsFile={files}"]
        for key in self.key_files:
            argv += ["-i", key]
        if self.proxy_jump:
            argv += ["-J", self.proxy_jump]
        return [*argv, f"{self.username}@{self.hostname}"]


def ssh_config_path() -> Path:
    return Path("~/.ssh/config").expanduser()


_MATCH_EXEC = re.compile(rb"^[ \t]*match\b.*\bexec\b", re.IGNORECASE | re.MULTILINE)


def _lean_paramiko_import() -> None:
    """Let paramiko load without invoke unless the user's SSH config needs it.

    paramiko imports invoke (with asyncio, unittest.mock and a YAML parser: ~80 ms, a tenth
    of an SSH re-submit) only to evaluate `Match exec` lines in an SSH config. Without such a
    line, that import is refused while paramiko loads; with one, paramiko loads as usual.
    """
    if "paramiko" in sys.modules or "invoke" in sys.modules:
        return
    try:
        needs_invoke = bool(_MATCH_EXEC.search(ssh_config_path().read_bytes()))
    except FileNotFoundError:
        needs_invoke = False
    except OSError:
        needs_invoke = True  # let paramiko read it and report what is wrong
    if needs_invoke:
        return
    sys.modules["invoke"] = None  # type: ignore[assignment]
    try:
        import paramiko  # noqa: F401
    finally:
        del sys.modules["invoke"]


def resolve_target(
    host: str, port: int | None = None, username: str | None = None, identity: str | None = None
) -> SSHTarget:
    """Apply ~/.ssh/config (Host aliases, HostName, User, Port, IdentityFile, ProxyJump)."""
    _lean_paramiko_import()
    import paramiko

    path = ssh_config_path()
    options: dict[str, Any] = {}
    if path.is_file():
        try:
            options = paramiko.SSHConfig.from_path(str(path)).lookup(host)
        except (OSError, paramiko.SSHException) as e:
            raise RadopsError(f"cannot read SSH config {path}: {e}") from e
    keys = [os.path.expanduser(identity)] if identity else []
    keys += options.get("identityfile", [])
    keys = [k for k in keys if os.path.exists(k)]  # as OpenSSH: a missing key file is skipped
    jump = options.get("proxyjump")
    return SSHTarget(
        alias=host,
        hostname=options.get("hostname", host),
        port=port or int(options.get("port", 22)),
        username=username or options.get("user") or getpass.getuser(),
        key_files=keys,
        proxy_jump=None if jump in (None, "none") else jump,
    )


def _parse_hop(hop: str) -> SSHTarget:
    """One ProxyJump entry, `[user@]host[:port]`, itself resolved through ~/.ssh/config."""
    user, _, hostport = hop.strip().rpartition("@")
    host, _, port = hostport.partition(":")
    return resolve_target(host, int(port) if port.isdigit() else None, user or None)


@dataclass(frozen=True)
class HostSpec:
    """A host as an executor names it, resolved through ~/.ssh/config only when needed."""

    host: str
    port: int | None = None
    username: str | None = None
    identity: str | None = None

    def resolve(self) -> SSHTarget:
        return resolve_target(self.host, self.port, self.username, self.identity)

    def shared_identity(self) -> list[Any]:
        """What decides where this host's connection goes, without loading paramiko: the
        names as given plus a hash of the SSH config that resolves them."""
        try:
            config = hashlib.sha256(ssh_config_path().read_bytes()).hexdigest()
        except OSError:
            config = None
        return [self.host, self.port, self.username, self.identity, config]


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _known_host_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


class HostKeyPolicy:
    """Trust keys in ~/.ssh/known_hosts or radops' own file; ask about new ones; refuse changes.

    paramiko itself raises BadHostKeyException for a key that differs from a known one; this
    class only decides about hosts with no known key (paramiko's MissingHostKeyPolicy hook).
    """

    def __init__(self, known_hosts: Path, confirm: ConfirmHostKey | None, trust_new: bool) -> None:
        self.known_hosts = known_hosts
        self.confirm = confirm
        self.trust_new = trust_new

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        fp = fingerprint(key)
        trusted = self.trust_new or (
            self.confirm is not None and self.confirm(hostname, key.get_name(), fp)
        )
        if not trusted:
            raise HostKeyError(
                f"unknown host key for {hostname} ({key.get_name()} {fp})",
                "Check the fingerprint with the machine's owner, then rerun with "
                "--accept-host-key (or add the key to ~/.ssh/known_hosts).",
            )
        self._remember(hostname, key)

    def _remember(self, hostname: str, key: paramiko.PKey) -> None:
        with _edit_known_hosts(self.known_hosts) as keys:
            keys.add(hostname, key.get_name(), key)


@contextlib.contextmanager
def _edit_known_hosts(path: Path) -> Iterator[paramiko.HostKeys]:
    """Change radops' own known-hosts file under its lock; it stays 0600."""
    _lean_paramiko_import()
    import paramiko
    from filelock import FileLock

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=30, mode=0o600):
        keys = paramiko.HostKeys()
        if path.exists():
            keys.load(str(path))
        yield keys
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        keys.save(str(path))


def known_host_keys(files: Iterable[Path]) -> paramiko.HostKeys:
    """The keys in these known-hosts files (missing or unreadable files add none)."""
    _lean_paramiko_import()
    import paramiko

    keys = paramiko.HostKeys()
    for path in files:
        with contextlib.suppress(OSError, paramiko.SSHException):
            keys.load(str(path))
    return keys


def forget_host(known_hosts: Path, hostname: str, port: int = 22) -> None:
    """Drop radops' trusted keys for an address (its machine is gone; a new one may get it)."""
    if not known_hosts.exists():
        return
    with _edit_known_hosts(known_hosts) as keys:
        for name in {hostname, _known_host_name(hostname, port)}:
            if name in keys:
                del keys[name]


class SSHConnection:
    """One authenticated SSH connection, opened on first use and reused for every command."""

    def __init__(
        self,
        target: SSHTarget | HostSpec,
        known_hosts: Path,
        confirm: ConfirmHostKey | None = None,
        trust_new_host_key: bool = False,
        persist: int = 0,
    ) -> None:
        self._host = target if isinstance(target, HostSpec) else None
        self._target = target if isinstance(target, SSHTarget) else None
        self.label = target.host if isinstance(target, HostSpec) else target.alias
        self.policy = HostKeyPolicy(known_hosts, confirm, trust_new_host_key)
        self._clients: list[paramiko.SSHClient] = []
        # persist > 0 (for a HostSpec): commands go through a shared connection (radops.ssh_mux)
        # if one serves this host, and a direct connection starts one for later commands.
        self.persist = persist
        self._shared: Path | None = None
        if persist > 0 and self._host is not None:
            from radops import ssh_mux

            self._shared = ssh_mux.socket_path(self._host.shared_identity(), known_hosts)
        self._shared_live: bool | None = None  # None: not tried yet

    @property
    def target(self) -> SSHTarget:
        """Where this connects, ~/.ssh/config applied (resolved on first use)."""
        if self._target is None:
            assert self._host is not None
            self._target = self._host.resolve()
        return self._target

    @property
    def client(self) -> paramiko.SSHClient:
        if not self._clients:
            self._clients = self._connect_chain(self.target)
        return self._clients[-1]

    def _connect_chain(self, target: SSHTarget) -> list[paramiko.SSHClient]:
        """Connect through each ProxyJump host in turn, then to the target."""
        hops = (
            [_parse_hop(hop) for hop in target.proxy_jump.split(",")] if target.proxy_jump else []
        )
        chain: list[paramiko.SSHClient] = []
        sock: Any = None
        try:
            for hop, nxt in zip(hops, [*hops[1:], target], strict=False):
                chain.append(self._connect_one(hop, sock))
                transport = chain[-1].get_transport()
                assert transport is not None
                sock = transport.open_channel(
                    "direct-tcpip", (nxt.hostname, nxt.port), ("127.0.0.1", 0)
                )
            chain.append(self._connect_one(target, sock))
        except BaseException:
            for client in reversed(chain):
                client.close()
            raise
        return chain

    def _connect_one(self, target: SSHTarget, sock: Any) -> paramiko.SSHClient:
        _lean_paramiko_import()
        import paramiko

        _quiet_paramiko()
        client = paramiko.SSHClient()
        client.load_system_host_keys()
        if self.policy.known_hosts.exists():
            client.load_host_keys(str(self.policy.known_hosts))
        client.set_missing_host_key_policy(self.policy)  # type: ignore[arg-type]
        try:
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
        except RadopsError:  # from the host-key policy, raised inside connect()
            client.close()
            raise
        except paramiko.BadHostKeyException as e:
            client.close()
            raise HostKeyError(
                f"the host key for {target.hostname} has changed "
                f"(now {e.key.get_name()} {fingerprint(e.key)}); refusing to connect",
                "If the machine was reinstalled, remove its old key (ssh-keygen -R "
                f"{_known_host_name(target.hostname, target.port)}) and add it again.",
            ) from e
        except paramiko.AuthenticationException as e:
            client.close()
            raise RadopsError(
                f"SSH authentication failed for {target.display}",
                "Check that `ssh` logs in with a key: ssh-agent, --identity-file or IdentityFile.",
            ) from e
        except (OSError, paramiko.SSHException, EOFError) as e:
            client.close()
            if "No authentication methods available" in str(e):
                raise RadopsError(
                    f"SSH authentication failed for {target.display}: no key to offer",
                    "Load a key into ssh-agent, pass --identity-file, or set IdentityFile.",
                ) from e
            raise EngineUnreachableError(
                f"cannot connect to {target.display}: {_reason(e)}",
                "Check the host name and port, and that `ssh` reaches it from here.",
            ) from e
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_S)
        return client

    def open(self) -> None:
        """Make sure commands can run: a live shared connection, else connect now."""
        if self._clients:
            return
        if self._shared is not None and self._shared_live is None:
            from radops import ssh_mux

            self._shared_live = ssh_mux.probe(self._shared)
            if self._shared_live:
                return
        self.client  # noqa: B018 - opening it is the point

    def close(self) -> None:
        connected = bool(self._clients)
        for client in reversed(self._clients):
            client.close()
        self._clients = []
        if connected and self._shared is not None:
            from radops import ssh_mux

            if not ssh_mux.probe(self._shared):
                assert self._host is not None
                ssh_mux.spawn(self._host, self.policy.known_hosts, self._shared, self.persist)

    def _session(self) -> paramiko.Channel:
        """A new session channel on the connection; nothing runs on it yet."""
        import paramiko

        try:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                raise EngineUnreachableError(f"the SSH connection to {self.target.display} closed")
            return transport.open_session(timeout=CONNECT_TIMEOUT_S)
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise EngineUnreachableError(
                f"lost the SSH connection to {self.target.display}: {_reason(e)}"
            ) from e

    def _exec(self, channel: paramiko.Channel, argv: Sequence[str]) -> None:
        """Start argv on `channel`."""
        import paramiko

        command = shlex.join(argv)  # the single place a remote command line is made
        try:
            channel.exec_command(command)
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise EngineUnreachableError(
                f"lost the SSH connection to {self.target.display}: {_reason(e)}"
            ) from e

    def _channel(self, argv: Sequence[str]) -> paramiko.Channel:
        channel = self._session()
        try:
            self._exec(channel, argv)
        except BaseException:
            channel.close()
            raise
        return channel

    def verified_key_is_known(self, known: paramiko.HostKeys) -> bool:
        """Is the host key this connection verified in `known` for this host?"""
        transport = self.client.get_transport()
        if transport is None:
            return False
        key = transport.get_remote_server_key()
        entry = known.lookup(_known_host_name(self.target.hostname, self.target.port))
        return entry is not None and entry.get(key.get_name()) == key

    def retire_shared(self) -> None:
        """Replace this host's shared connection, if any, with one made after this one: a
        login made now picks up what changed on the machine (groups, for one)."""
        if self._shared is not None:
            from radops import ssh_mux

            ssh_mux.retire(self._shared)
            self._shared_live = False

    def _remote(
        self, argv: Sequence[str], stdin: Iterable[bytes] | None
    ) -> Iterator[tuple[str, bytes]]:
        """Run argv with `stdin` sent to it: ("stdout"|"stderr", bytes)..., ("exit", b"N")."""
        if self._shared is not None and self._shared_live is not False and not self._clients:
            from radops import ssh_mux

            try:
                command = ssh_mux.MuxCommand(self._shared, list(argv), self.label)
            except ssh_mux.MuxUnavailable:
                self._shared_live = False  # gone or broken: connect directly from now on
            else:
                self._shared_live = True
                return command.output(stdin)
        return self._direct(argv, stdin)

    def _direct(
        self, argv: Sequence[str], stdin: Iterable[bytes] | None
    ) -> Iterator[tuple[str, bytes]]:
        channel = self._channel(argv)
        with channel:
            try:
                for chunk in stdin or ():
                    channel.sendall(chunk)
            except OSError as e:
                raise EngineUnreachableError(f"lost the SSH connection: {_reason(e)}") from e
            channel.shutdown_write()
            yield from _drain(channel)
            yield "exit", str(self._exit_status(channel)).encode()

    def run(self, argv: Sequence[str], stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Run argv on the remote host; return (exit status, stdout, stderr). For small outputs."""
        out: list[bytes] = []
        err: list[bytes] = []
        status = b""
        for stream, data in self._remote(argv, None if stdin is None else [stdin]):
            if stream == "exit":
                status = data
            else:
                (err if stream == "stderr" else out).append(data)
        return int(status), b"".join(out), b"".join(err)

    def _exit_status(self, channel: paramiko.Channel) -> int:
        status = channel.recv_exit_status()
        if status == -1:  # the channel closed without one: the connection dropped
            raise EngineUnreachableError(
                f"lost the SSH connection to {self.target.display}",
                "The job, if it started, keeps running there; see `radops executors jobs`.",
            )
        return status

    def stream(self, argv: Sequence[str]) -> Iterator[tuple[str, bytes]]:
        """Yield ("stdout"|"stderr", bytes) as they arrive, then ("exit", b"<exit status>")."""
        yield from self._remote(argv, None)

    def run_with_input(self, argv: Sequence[str], chunks: Iterable[bytes]) -> tuple[int, bytes]:
        """Run argv with `chunks` streamed to its stdin; return (exit status, stderr + stdout)."""
        output: list[bytes] = []
        status = b""
        for stream, data in self._remote(argv, chunks):
            if stream == "exit":
                status = data
            else:
                output.append(data)
        return int(status), b"".join(output)


def _quiet_paramiko() -> None:
    """paramiko logs failed handshakes as tracebacks; radops reports them as one line instead."""
    import logging

    log = logging.getLogger("paramiko")
    if not log.handlers and not os.environ.get("RADOPS_DEBUG"):
        log.addHandler(logging.NullHandler())


def _drain(channel: paramiko.Channel) -> Iterator[tuple[str, bytes]]:
    """Yield stdout and stderr chunks as they arrive, until the remote command closes both."""
    fd = channel.fileno()  # readable when either stream has data
    while True:
        got = 0
        while channel.recv_ready():
            data = channel.recv(_CHUNK)
            got += len(data)
            yield "stdout", data
        while channel.recv_stderr_ready():
            data = channel.recv_stderr(_CHUNK)
            got += len(data)
            yield "stderr", data
        if channel.eof_received and not channel.recv_ready() and not channel.recv_stderr_ready():
            return
        if channel.closed:
            return
        if not got:
            select.select([fd], [], [], 1.0)
        elif got < _CHUNK // 4:
            # Output is arriving in small SSH packets: let a few more land before the next
            # read, so a big log costs thousands of reads and writes, not hundreds of thousands.
            time.sleep(_COALESCE_S)


def _reason(e: BaseException) -> str:
    inner = getattr(e, "errors", None)  # paramiko's NoValidConnectionsError: one per address
    if isinstance(inner, dict) and inner:
        return _reason(next(iter(inner.values())))
    if isinstance(e, socket.gaierror):
        return "unknown host name"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.timeout | TimeoutError):
        return "timed out"
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
