"""Keep an SSH connection open between radops commands, as OpenSSH's ControlPersist does.

The first command that reaches a host connects itself (asking about an unknown host key if it
must) and, when it is done, starts `python -m radops.ssh_mux` in the background. That process
connects with the same settings, trusting only host keys that are already known, and serves
remote commands to later radops commands over a unix socket until it has been idle for the
persist time (`ssh_persist`, default 300 s; 0 turns this off). A later command then needs
neither paramiko nor a key exchange: it sends the argv and relays stdin, stdout, stderr and
the exit status.

The socket lives in a directory only this user can enter (XDG_RUNTIME_DIR, else
/tmp/radops-UID), is 0600, and the server also checks each peer's uid. Its name is a hash
of everything that decides the connection (host, port, user, key files, jump hosts, the
known-hosts file), so a changed executor or SSH config gets its own connection.

Wire format: frames of a 1-byte kind and a 4-byte length. The client sends `R` (JSON argv),
then `I` (stdin bytes) and one `E` (end of stdin); the server answers `S` once the remote
command runs (or `F`, message: it could not start it, and the client connects itself), then
`O`/`e` (stdout/stderr bytes) and `X` (exit status). A connection that ends before `X` is a
lost connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from radops.errors import EngineUnreachableError, RadopsError, UsageError

if TYPE_CHECKING:
    import paramiko

    from radops.ssh import HostSpec, SSHConnection

DEFAULT_PERSIST_S = 300
MAX_PERSIST_S = 7 * 24 * 3600
PERSIST_ENV = "RADOPS_SSH_PERSIST"
_FRAME = struct.Struct(">BI")
_CHUNK = 1 << 16
_ACCEPT_POLL_S = 1.0
# Longer than the server's own wait to open a session (radops.ssh.CONNECT_TIMEOUT_S).
START_TIMEOUT_S = 30.0


class MuxUnavailable(Exception):
    """No shared connection could start the command; the caller connects itself."""


def parse_persist(value: str) -> int:
    """`ssh_persist` as seconds: a whole number from 0 (off) to a week."""
    if not value.strip().isdigit() or int(value) > MAX_PERSIST_S:
        raise UsageError(
            f"invalid ssh_persist {value!r}: give seconds, 0 to {MAX_PERSIST_S} (0 turns it off)"
        )
    return int(value)


def persist_seconds() -> int:
    """How long an idle shared connection stays open: RADOPS_SSH_PERSIST, the setting, 300."""
    from radops.config import resolve_setting
    from radops.store import ExecutorStore

    value = os.environ.get(PERSIST_ENV)
    if value is None:
        value = resolve_setting(ExecutorStore().load().settings, "ssh_persist")
    return DEFAULT_PERSIST_S if value is None else parse_persist(value)


def socket_dir() -> Path | None:
    """This user's private directory for sockets; None if it cannot be made private."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = (
        Path(runtime) / "radops"
        if runtime
        else Path(tempfile.gettempdir()) / f"radops-{os.getuid()}"
    )
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        info = base.lstat()
    except OSError:
        return None
    # Someone else's directory, a symlink, or one others can enter: not ours to trust.
    if not base.is_dir() or base.is_symlink() or info.st_uid != os.getuid():
        return None
    if info.st_mode & 0o077:
        return None
    return base


def socket_path(identity: list[Any], known_hosts: Path) -> Path | None:
    """Where the shared connection for a host (`HostSpec.shared_identity()`) listens."""
    directory = socket_dir()
    if directory is None:
        return None
    key = json.dumps([*identity, str(known_hosts.resolve())])
    return directory / (hashlib.sha256(key.encode()).hexdigest()[:20] + ".sock")


# The client side -----------------------------------------------------------------------------


def _send(sock: socket.socket, kind: bytes, payload: bytes = b"") -> None:
    sock.sendall(_FRAME.pack(kind[0], len(payload)) + payload)


def _read_frame(reader: BinaryIO) -> tuple[bytes, bytes] | None:
    """The next frame, or None at the end of the stream (or a torn frame)."""
    header = reader.read(_FRAME.size)  # a buffered socket file: blocks for all n bytes or EOF
    if len(header) < _FRAME.size:
        return None
    kind, length = _FRAME.unpack(header)
    payload = reader.read(length) if length else b""
    if len(payload) < length:
        return None
    return bytes([kind]), payload


def probe(path: Path) -> bool:
    """Does a shared connection answer at `path`?"""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        sock.close()


class MuxCommand:
    """One remote command through the shared connection.

    Creating it sends the argv and waits until the remote command runs; it raises
    MuxUnavailable if that did not happen (nothing ran: the caller connects itself).
    """

    def __init__(self, path: Path, argv: list[str], display: str) -> None:
        self.display = display
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(str(path))
        except OSError as e:  # no server (gone, or never started): nothing was sent
            self.sock.close()
            raise MuxUnavailable(str(e)) from e
        try:
            self.sock.settimeout(START_TIMEOUT_S)
            _send(self.sock, b"R", json.dumps(argv).encode())
            self.reader = self.sock.makefile("rb")
            answer = _read_frame(self.reader)
            self.sock.settimeout(None)  # then output may take hours (logs --follow)
        except TimeoutError as e:
            # The server took the request but did not say whether the command started: running
            # it again could start a job twice, so this is an error, not a fallback.
            self.sock.close()
            raise EngineUnreachableError(
                f"the shared SSH connection to {display} did not answer",
                "Run the command again; `pkill -f radops.ssh_mux` ends stuck shared connections.",
            ) from e
        except OSError as e:
            self.sock.close()
            raise MuxUnavailable(str(e)) from e
        if answer is None or answer[0] != b"S":
            self.sock.close()
            raise MuxUnavailable(answer[1].decode(errors="replace") if answer else "no answer")

    def output(self, stdin: Iterable[bytes] | None) -> Iterator[tuple[str, bytes]]:
        """Send stdin, then yield ("stdout"|"stderr", bytes)... and ("exit", b"<status>")."""
        try:
            try:
                for chunk in stdin or ():
                    for start in range(0, len(chunk), _CHUNK):
                        _send(self.sock, b"I", chunk[start : start + _CHUNK])
                _send(self.sock, b"E")
            except OSError as e:
                raise EngineUnreachableError(
                    f"lost the SSH connection to {self.display}: {e}"
                ) from e
            while True:
                frame = _read_frame(self.reader)
                if frame is None:
                    raise EngineUnreachableError(
                        f"lost the SSH connection to {self.display}",
                        "The job, if it started, keeps running there; see `radops executors jobs`.",
                    )
                kind, payload = frame
                if kind == b"X":
                    yield "exit", payload
                    return
                yield ("stderr" if kind == b"e" else "stdout"), payload
        finally:
            self.reader.close()
            self.sock.close()


def spawn(host: HostSpec, known_hosts: Path, path: Path, seconds: int) -> None:
    """Start the shared connection in the background; this command does not wait for it."""
    settings = {
        "host": dataclasses.asdict(host),
        "known_hosts": str(known_hosts),
        "socket": str(path),
        "seconds": seconds,
    }
    with contextlib.suppress(OSError):
        process = subprocess.Popen(
            [sys.executable, "-m", "radops.ssh_mux"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not killed with this command's process group (Ctrl-C)
            close_fds=True,
            cwd="/",  # hold no directory of the user's busy
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(settings).encode())
        process.stdin.close()


# The server side -----------------------------------------------------------------------------


class _Server:
    def __init__(self, conn: SSHConnection, listener: socket.socket, seconds: int) -> None:
        self.conn = conn
        self.listener = listener
        self.seconds = seconds
        self.lock = threading.Lock()
        self.active = 0
        self.last_used = time.monotonic()

    def alive(self) -> bool:
        transport = self.conn.client.get_transport()
        return transport is not None and transport.is_active()

    def serve(self) -> None:
        """Accept commands until idle for `seconds` (or the SSH connection drops)."""
        self.listener.settimeout(_ACCEPT_POLL_S)
        while self.alive():
            with self.lock:
                idle = self.active == 0 and time.monotonic() - self.last_used > self.seconds
            if idle:
                return
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            if not _same_user(client):
                client.close()
                continue
            with self.lock:
                self.active += 1
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        try:
            self._relay(client)
        except (OSError, RadopsError):
            pass  # the client left, or the connection dropped: the client reports it
        finally:
            client.close()
            with self.lock:
                self.active -= 1
                self.last_used = time.monotonic()

    def _relay(self, client: socket.socket) -> None:
        from radops.ssh import _drain

        client.settimeout(None)
        reader = client.makefile("rb")
        request = _read_frame(reader)
        if request is None or request[0] != b"R":
            return
        argv = json.loads(request[1])
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            _send(client, b"F", b"bad request")
            return
        try:
            channel = self.conn._channel(argv)
        except RadopsError as e:
            _send(client, b"F", str(e).encode())
            return
        with channel:
            _send(client, b"S")
            feeder = threading.Thread(target=_feed, args=(reader, channel), daemon=True)
            feeder.start()
            for stream, data in _drain(channel):
                _send(client, b"e" if stream == "stderr" else b"O", data)
            status = channel.recv_exit_status()
            if status != -1:  # -1: the connection dropped; closing says so to the client
                _send(client, b"X", str(status).encode())


def _feed(reader: BinaryIO, channel: paramiko.Channel) -> None:
    """Client stdin frames -> the remote command's stdin; close it on `E` or a lost client."""
    try:
        while True:
            frame = _read_frame(reader)
            if frame is None:
                channel.close()
                return
            kind, payload = frame
            if kind == b"E":
                channel.shutdown_write()
                return
            channel.sendall(payload)
    except OSError:
        channel.close()


def _same_user(client: socket.socket) -> bool:
    creds = client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def _listen(path: Path) -> socket.socket | None:
    """Bind the socket, unless a live server already answers there (then None)."""
    from filelock import FileLock, Timeout

    try:
        with FileLock(str(path) + ".lock", timeout=10, mode=0o600):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
                return None  # another server won the race
            except OSError:
                pass
            finally:
                probe.close()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a stale socket of a server that died
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)
            try:
                listener.bind(str(path))
            finally:
                os.umask(old)
            listener.listen(16)
            return listener
    except (Timeout, OSError):
        return None


def main() -> None:
    """`python -m radops.ssh_mux`, settings as JSON on stdin (see spawn)."""
    from radops.ssh import HostSpec, SSHConnection

    settings = json.loads(sys.stdin.read())
    sys.stdin.close()
    path = Path(settings["socket"])
    try:
        conn = SSHConnection(HostSpec(**settings["host"]), Path(settings["known_hosts"]))
        conn.client  # noqa: B018 - connect first: the socket appears only when it can serve
    except RadopsError:
        return  # e.g. a key that needs a passphrase: commands keep connecting themselves
    listener = _listen(path)
    if listener is None:
        conn.close()
        return
    inode = path.stat().st_ino
    try:
        _Server(conn, listener, int(settings["seconds"])).serve()
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            if path.stat().st_ino == inode:  # still ours, not a successor's
                path.unlink()
        conn.close()


if __name__ == "__main__":
    main()
