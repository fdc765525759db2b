"""Where a host's shared connection listens, and who may talk to it.

The socket lives in a directory only this user can enter (XDG_RUNTIME_DIR/radops when
XDG_RUNTIME_DIR itself is this user's and private, else TMPDIR/radops-UID), is 0600, and each
side checks the other's uid where the OS says it: the server its clients', the client the
server's. So an XDG_RUNTIME_DIR kept from another user (`su` without `-`, `sudo -E`) is not
used, and a server someone else runs is never sent a command.
Its name is a hash of what decides the connection (the executor's host, port, user and key as
given, the contents of ~/.ssh/config, radops' known-hosts file), so a changed executor or SSH
config gets its own connection.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any

SOCKET_TIMEOUT_S = 5.0  # to connect to the server and hear back that it took the request
MAX_SOCKET_PATH = 100  # bytes; unix socket paths are limited to 104 (macOS) or 108 (Linux)


def _private(path: Path) -> bool:
    """Is `path` a real directory (not a symlink) of this user's that no one else can enter?"""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def socket_dir() -> Path | None:
    """This user's private directory for sockets; None if it cannot be made private."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _private(Path(runtime)):
        base = Path(runtime) / "radops"
    else:  # unset, or not this user's own: someone else could swap what is inside
        base = Path(tempfile.gettempdir()) / f"radops-{os.getuid()}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    # Someone else's directory, a symlink, or one others can enter: not ours to trust.
    return base if _private(base) else None


def socket_path(identity: list[Any], known_hosts: Path) -> Path | None:
    """Where the shared connection for a host (`HostSpec.shared_identity()`) listens."""
    directory = socket_dir()
    if directory is None:
        return None
    key = json.dumps([*identity, str(known_hosts.resolve())])
    path = directory / (hashlib.sha256(key.encode()).hexdigest()[:20] + ".sock")
    return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH else None


def lock_path(path: Path) -> str:
    """The lock that orders servers starting and retiring at `path`."""
    return str(path) + ".lock"


def connect(path: Path) -> socket.socket:
    """A client socket connected to this user's server at `path`; OSError if none answers or
    the process listening there runs as someone else."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(SOCKET_TIMEOUT_S)  # a stopped server's full backlog must not hang us
    try:
        sock.connect(str(path))
        if not same_user(sock):
            raise PermissionError(f"the shared connection at {path} is not this user's")
    except OSError:
        sock.close()
        raise
    return sock


def same_user(peer: socket.socket) -> bool:
    """Does the peer run as this user? (Linux; elsewhere the 0700 folder is the guard.)"""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return True
    try:
        creds = peer.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())
