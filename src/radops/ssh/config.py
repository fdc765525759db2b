"""Where an SSH connection goes: ~/.ssh/config applied (aliases, HostName, User, ProxyJump)."""

from __future__ import annotations

import getpass
import hashlib
import importlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radops.errors import RadopsError


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
        """`user@host`, `user@host:port`; an IPv6 address with a port is `user@[::1]:2222`."""
        if self.port == 22:
            return f"{self.username}@{self.hostname}"
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.username}@{host}:{self.port}"

    @property
    def known_host_name(self) -> str:
        """The name this host's keys have in a known-hosts file."""
        return known_host_name(self.hostname, self.port)

    def hops(self) -> list[SSHTarget]:
        """The ProxyJump hosts to pass through, in order, each resolved through ~/.ssh/config."""
        return [_parse_hop(hop) for hop in self.proxy_jump.split(",")] if self.proxy_jump else []

    def ssh_argv(self, known_hosts: Path | None = None) -> list[str]:
        """The OpenSSH command line that reaches the same place (for `connect`), trusting the
        host keys radops trusts (`known_hosts`, radops' own file) as well as the user's.
        (A pinned host's is `radops.ssh.openssh.pinned_argv`.)"""
        argv = ["ssh", "-p", str(self.port)]
        if known_hosts is not None:
            files = f"{Path('~/.ssh/known_hosts').expanduser()} {known_hosts}"
            argv += ["-o", f"UserKnownHostsFile={files}"]
        for key in self.key_files:
            argv += ["-i", key]
        if self.proxy_jump:
            argv += ["-J", self.proxy_jump]
        return [*argv, f"{self.username}@{self.hostname}"]


def known_host_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


def ssh_config_path() -> Path:
    return Path("~/.ssh/config").expanduser()


_MATCH_EXEC = re.compile(rb"^[ \t]*match\b.*\bexec\b", re.IGNORECASE | re.MULTILINE)


def load_paramiko() -> None:
    """Load paramiko without invoke unless the user's SSH config needs it.

    paramiko imports invoke (with asyncio, unittest.mock and a YAML parser: ~80 ms, a tenth
    of an SSH re-submit) only to evaluate `Match exec` lines in an SSH config. Without such a
    line, that import is refused while paramiko loads; with one, paramiko loads as usual.
    """
    if "paramiko" not in sys.modules and "invoke" not in sys.modules and not _needs_invoke():
        sys.modules["invoke"] = None  # type: ignore[assignment]
        try:
            importlib.import_module("paramiko")
        finally:
            del sys.modules["invoke"]


def _needs_invoke() -> bool:
    try:
        return bool(_MATCH_EXEC.search(ssh_config_path().read_bytes()))
    except FileNotFoundError:
        return False
    except OSError:
        return True  # let paramiko read it and report what is wrong


def resolve_target(
    host: str, port: int | None = None, username: str | None = None, identity: str | None = None
) -> SSHTarget:
    """Apply ~/.ssh/config (Host aliases, HostName, User, Port, IdentityFile, ProxyJump)."""
    load_paramiko()
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
