"""Host keys: ~/.ssh/known_hosts and radops' own file, fingerprints, and what to do with a new key.

An unknown key is trusted only with consent (a flag or a question); a changed key is refused
by paramiko itself (BadHostKeyException, turned into HostKeyError in radops.ssh.errors).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from radops.errors import HostKeyError
from radops.ssh.config import known_host_name, load_paramiko

if TYPE_CHECKING:
    import paramiko

# (host, key type, SHA256 fingerprint) -> trust this key?
ConfirmHostKey = Callable[[str, str, str], bool]


def user_known_hosts() -> Path:
    return Path("~/.ssh/known_hosts").expanduser()


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class HostKeyPolicy:
    """Trust keys in ~/.ssh/known_hosts or radops' own file; ask about new ones; refuse changes.

    paramiko itself raises BadHostKeyException for a key that differs from a known one; this
    class only decides about hosts with no known key (paramiko's MissingHostKeyPolicy hook).
    """

    def __init__(
        self,
        known_hosts: Path,
        confirm: ConfirmHostKey | None = None,
        trust_new: bool = False,
    ) -> None:
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
        with edit_known_hosts(self.known_hosts) as keys:
            keys.add(hostname, key.get_name(), key)


@contextlib.contextmanager
def edit_known_hosts(path: Path) -> Iterator[paramiko.HostKeys]:
    """Change radops' own known-hosts file under its lock; it stays 0600."""
    load_paramiko()
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
    load_paramiko()
    import paramiko

    keys = paramiko.HostKeys()
    for path in files:
        with contextlib.suppress(OSError, paramiko.SSHException):
            keys.load(str(path))
    return keys


def key_is_known(key: paramiko.PKey, name: str, known: paramiko.HostKeys) -> bool:
    """Is `key` in `known` for the host named `name` (see `known_host_name`)?"""
    entry = known.lookup(name)
    return entry is not None and entry.get(key.get_name()) == key


def forget_host(known_hosts: Path, hostname: str, port: int = 22) -> None:
    """Drop radops' trusted keys for an address (its machine is gone; a new one may get it)."""
    if not known_hosts.exists():
        return
    with edit_known_hosts(known_hosts) as keys:
        for name in {hostname, known_host_name(hostname, port)}:
            if name in keys:
                del keys[name]
