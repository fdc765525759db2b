"""paramiko's and the socket layer's exceptions turned into radops errors, in one place."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

from radops.errors import EngineUnreachableError, HostKeyError, RadopsError
from radops.errors import lost_connection as connection_lost
from radops.ssh.config import load_paramiko

if TYPE_CHECKING:
    from radops.ssh.config import SSHTarget


def reason(e: BaseException) -> str:
    """Why a connection failed, in a few words."""
    inner = getattr(e, "errors", None)  # paramiko's NoValidConnectionsError: one per address
    if isinstance(inner, dict) and inner:
        return reason(next(iter(inner.values())))
    if isinstance(e, socket.gaierror):
        return "unknown host name"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, socket.timeout | TimeoutError):
        return "timed out"
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def lost_connection(target: SSHTarget) -> EngineUnreachableError:
    """The connection dropped (or a command's channel closed without an exit status). How it
    dropped (paramiko's EOFError, "Socket is closed") says nothing more: RADOPS_DEBUG shows it."""
    return connection_lost(target.display)


def ssh_error(e: BaseException, target: SSHTarget, *, connecting: bool) -> RadopsError | None:
    """The radops error for `e`, raised while connecting to `target` or using the connection;
    None if `e` is not an SSH or network failure (a bug, or a RadopsError already)."""
    from radops.ssh.hostkeys import fingerprint

    load_paramiko()
    import paramiko

    if isinstance(e, paramiko.BadHostKeyException):
        return HostKeyError(
            f"the host key for {target.hostname} has changed "
            f"(now {e.key.get_name()} {fingerprint(e.key)}); refusing to connect",
            "If the machine was reinstalled, remove its old key (ssh-keygen -R "
            f"{target.known_host_name}) and add it again.",
        )
    if not isinstance(e, OSError | paramiko.SSHException | EOFError):
        return None
    if not connecting:
        return lost_connection(target)
    if isinstance(e, paramiko.AuthenticationException):
        return RadopsError(
            f"SSH authentication failed for {target.display}",
            "Check that `ssh` logs in with a key: ssh-agent, --identity-file or IdentityFile.",
        )
    if "No authentication methods available" in str(e):
        return RadopsError(
            f"SSH authentication failed for {target.display}: no key to offer",
            "Load a key into ssh-agent, pass --identity-file, or set IdentityFile.",
        )
    return EngineUnreachableError(
        f"cannot connect to {target.display}: {reason(e)}",
        "Check the host name and port, and that `ssh` reaches it from here.",
    )


@contextlib.contextmanager
def ssh_errors(target: SSHTarget, *, connecting: bool = False) -> Iterator[None]:
    """Raise SSH and network failures inside the block as radops errors (`ssh_error`)."""
    try:
        yield
    except RadopsError:
        raise
    except Exception as e:
        error = ssh_error(e, target, connecting=connecting)
        if error is None:
            raise
        raise error from e
