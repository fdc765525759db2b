"""Host keys: ~/.ssh/known_hosts and radops' own file, fingerprints, and what to do with a new key.

An unknown key is trusted only with consent (a flag or a question); a changed key is refused
by paramiko itself (BadHostKeyException, turned into HostKeyError in radops.ssh.errors).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from radops.errors import ConfigError, HostKeyError, unknown_host_key
from radops.ssh.config import known_host_name, load_paramiko

if TYPE_CHECKING:
    import paramiko

# (host, key type, SHA256 fingerprint) -> trust this key?
ConfirmHostKey = Callable[[str, str, str], bool]
_log = logging.getLogger("radops.hostkeys")


def user_known_hosts() -> Path:
    return Path("~/.ssh/known_hosts").expanduser()


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a host key."""
    return blob_fingerprint(key.asbytes())


def blob_fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key in its wire form (base64-decoded)."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class HostKeyPolicy:
    """Trust keys in ~/.ssh/known_hosts or radops' own file; ask about new ones; refuse changes.

    paramiko itself raises BadHostKeyException for a key that differs from a known one; this
    class decides about hosts with no known key (paramiko's MissingHostKeyPolicy hook) and,
    with `pinned` fingerprints (a VM radops created), refuses every other key, known or not,
    whatever `trust_new` and `confirm` say (`check_key`, also after the handshake).
    """

    def __init__(
        self,
        known_hosts: Path,
        confirm: ConfirmHostKey | None = None,
        trust_new: bool = False,
        pinned: frozenset[str] = frozenset(),
        trust_new_hops: bool | None = None,  # None: as `trust_new`
    ) -> None:
        self.known_hosts = known_hosts
        self.confirm = confirm
        self.trust_new = trust_new
        self.pinned = pinned
        self.trust_new_hops = trust_new if trust_new_hops is None else trust_new_hops
        self.revoked: set[str] = set()  # base64 keys marked @revoked (`load_into`)

    def for_hops(self) -> HostKeyPolicy:
        """The policy for ProxyJump hosts on the way: no pins (they are the target's), and
        new keys trusted only as the user said for every host."""
        return HostKeyPolicy(self.known_hosts, self.confirm, self.trust_new_hops)

    def load_into(self, client: paramiko.SSHClient) -> None:
        """Give `client` the keys of ~/.ssh/known_hosts and radops' file; note revoked keys."""
        self.revoked = set()
        for path, load in (
            (user_known_hosts(), client.load_system_host_keys),
            (self.known_hosts, client.load_host_keys),
        ):
            usable, revoked = read_known_hosts(path)
            self.revoked |= revoked
            _load_lines(load, usable)

    def check_key(self, hostname: str, key: paramiko.PKey) -> None:
        """Raise HostKeyError if `key` is revoked, or not one of the pins (when there are)."""
        fp = fingerprint(key)
        if key.get_base64() in self.revoked:
            raise HostKeyError(
                f"the host key of {hostname} ({key.get_name()} {fp}) is marked @revoked in a "
                "known-hosts file; refusing to connect"
            )
        if self.pinned and fp not in self.pinned:
            raise HostKeyError(
                f"the host key of {hostname} ({key.get_name()} {fp}) is not the one pinned for "
                f"this executor ({', '.join(sorted(self.pinned))}); refusing to connect",
                "This is not the machine radops created. If the VM was replaced outside radops, "
                "delete the executor (`radops executors remove NAME`) and create it again.",
            )

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        fp = fingerprint(key)
        self.check_key(hostname, key)
        if self.pinned:
            trusted = True  # the key radops pinned when it created the machine
        else:
            trusted = self.trust_new or (
                self.confirm is not None and self.confirm(hostname, key.get_name(), fp)
            )
        if not trusted:
            raise unknown_host_key(f"unknown host key for {hostname} ({key.get_name()} {fp})")
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
        try:
            text = path.read_text(errors="surrogateescape")
        except FileNotFoundError:
            text = ""
        except OSError as e:  # rewriting a file that could not be read would lose it
            raise ConfigError(f"cannot read {path}: {e.strerror}") from e
        known = parse_known_hosts(text, path)
        keys = paramiko.HostKeys()
        _load_lines(keys.load, known.usable)
        yield keys
        # A new file beside it, 0600 from the start, then renamed over: whole or not at all.
        # Lines radops does not manage (comments, @revoked, ...) are kept as they were.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".known_hosts.", suffix=".tmp")
        os.close(fd)
        try:
            keys.save(tmp)
            if known.other:
                kept = "".join(known.other)
                with open(tmp, "r+", errors="surrogateescape") as f:
                    saved = f.read()
                    f.seek(0)
                    f.write(kept + saved)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def known_host_keys(files: Iterable[Path]) -> paramiko.HostKeys:
    """The usable keys in these known-hosts files (missing or unreadable files add none)."""
    load_paramiko()
    import paramiko

    keys = paramiko.HostKeys()
    for path in files:
        _load_lines(keys.load, read_known_hosts(path)[0])
    return keys


def read_known_hosts(path: Path) -> tuple[list[str], set[str]]:
    """The lines of a known-hosts file that paramiko can use, and the base64 keys of its
    `@revoked` lines (a missing or unreadable file has none, as for OpenSSH)."""
    try:
        text = path.read_text(errors="surrogateescape")
    except OSError:
        return [], set()
    known = parse_known_hosts(text, path)
    return known.usable, known.revoked


@dataclass
class KnownHostsText:
    """A known-hosts file's lines, sorted by what radops does with them."""

    usable: list[str] = field(default_factory=list)  # host key lines paramiko reads
    revoked: set[str] = field(default_factory=set)  # base64 keys of `@revoked` lines
    other: list[str] = field(default_factory=list)  # the rest, kept as they are on rewrite


def parse_known_hosts(text: str, path: Path) -> KnownHostsText:
    """Sort a known-hosts file's lines. `@cert-authority` lines (certificates are not
    supported) and lines paramiko cannot parse are not used, as OpenSSH skips what it cannot
    use; the former with a warning."""
    load_paramiko()
    from paramiko.hostkeys import HostKeyEntry

    known = KnownHostsText()
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if fields and fields[0] == "@revoked" and len(fields) >= 4:
            known.revoked.add(fields[3])
        elif fields and fields[0].startswith("@"):
            _warn_once(f"{path}:{number}: {fields[0]} lines are not supported; skipped")
        else:
            try:
                usable = HostKeyEntry.from_line(line) is not None
            except Exception:  # paramiko's InvalidHostKey and friends: a line it cannot read
                usable = False
            if usable:
                known.usable.append(line + "\n")
                continue
            if line.strip() and not line.lstrip().startswith("#"):
                _log.debug("%s:%d: cannot read this line; skipped", path, number)
        if line.strip():
            known.other.append(line + "\n")
    return known


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """A line on stderr (through logging's last-resort handler), once per command."""
    if message not in _warned:
        _warned.add(message)
        _log.warning("radops: warning: %s", message)


def _load_lines(load: Callable[[str], None], lines: list[str]) -> None:
    """Hand `lines` to a paramiko loader that reads a file."""
    if not lines:
        return
    with tempfile.NamedTemporaryFile("w", prefix="radops-known-hosts.") as f:
        f.writelines(lines)
        f.flush()
        load(f.name)


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
