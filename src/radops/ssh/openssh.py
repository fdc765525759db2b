"""OpenSSH's own client for interactive sessions (`connect`, `exec -t`) to a pinned host."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from radops.errors import UsageError

if TYPE_CHECKING:
    import paramiko

    from radops.ssh.config import SSHTarget

# The name the pinned key has in the file OpenSSH gets, whatever address the machine has now.
PINNED_ALIAS = "radops-pinned-host"


def pinned_argv(target: SSHTarget, known_hosts: Path) -> list[str]:
    """`target`'s OpenSSH command line trusting only the key in `known_hosts` (a file from
    `pinned_known_hosts`): no other file, no DNS, no question, no key learnt or updated."""
    options = [
        f"UserKnownHostsFile={known_hosts}",
        "GlobalKnownHostsFile=/dev/null",
        f"HostKeyAlias={PINNED_ALIAS}",
        "StrictHostKeyChecking=yes",
        "UpdateHostKeys=no",
        "CheckHostIP=no",
        "VerifyHostKeyDNS=no",
    ]
    if _knows_option("KnownHostsCommand=none"):  # OpenSSH 8.5+: keys from a user's command
        options.append("KnownHostsCommand=none")
    argv = target.ssh_argv()
    extra = [word for option in options for word in ("-o", option)]
    return [argv[0], *extra, *argv[1:]]


@contextlib.contextmanager
def pinned_known_hosts(key: paramiko.PKey, keep: Path | None = None) -> Iterator[Path]:
    """A known-hosts file holding `key` alone, under PINNED_ALIAS: a one-off file in a
    private temporary folder, removed afterwards; or `keep`, (re)written and left in place
    (for a command printed to run later)."""
    if keep is not None:
        _write(keep, key)
        yield keep
        return
    folder = Path(tempfile.mkdtemp(prefix="radops-ssh-"))  # 0700
    try:
        path = folder / "known_hosts"
        _write(path, key)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write(path: Path, key: paramiko.PKey) -> None:
    """`path` holds exactly `key`'s line, 0600, whole or not at all."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".known_hosts.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{PINNED_ALIAS} {key.get_name()} {key.get_base64()}\n")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def run_foreground(argv: list[str]) -> int:
    """Run OpenSSH's client on this terminal; its exit status. A hangup or SIGTERM ends this
    process through its `finally` blocks (so a one-off file is removed), not abruptly."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGHUP, signal.SIGTERM)}
    try:
        return subprocess.run(argv, check=False).returncode
    except OSError as e:
        raise UsageError(f"cannot start ssh: {e.strerror}", "Install OpenSSH's client.") from e
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@cache
def _knows_option(option: str) -> bool:
    """Does this OpenSSH client accept `-o option`? (`ssh -G` parses and prints, connects
    nowhere; `-F /dev/null`: the user's config, with its `Match exec` lines, is not run.)"""
    try:
        done = subprocess.run(
            ["ssh", "-F", "/dev/null", "-G", "-o", option, "radops-probe"],
            capture_output=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
