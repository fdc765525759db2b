"""Keep an SSH connection open between radops commands, as OpenSSH's ControlPersist does.

The first command that reaches a host connects itself (asking about an unknown host key if it
must) and, when it is done, starts `python -m radops.ssh_mux` in the background. That process
connects with the same settings, trusting only host keys that are already known, and serves
remote commands to later radops commands over a unix socket until it has been idle for the
persist time (`ssh_persist`, default 300 s; 0 turns this off). A later command then needs
neither paramiko nor a key exchange: it sends the argv and relays stdin, stdout, stderr and
the exit status.

The socket lives in a directory only this user can enter (XDG_RUNTIME_DIR, else
TMPDIR/radops-UID), is 0600, and the server also checks each peer's uid where the OS says it.
Its name is a hash of what decides the connection (the executor's host, port, user and key as
given, the contents of ~/.ssh/config, radops' known-hosts file), so a changed executor or SSH
config gets its own connection. Before each command the server checks that the host key it
verified is still in a known-hosts file; if not, or if the connection fails, it retires.

Wire format: frames of a 1-byte kind and a 4-byte length. The client sends `R` (JSON argv),
then `I` (stdin bytes) and one `E` (end of stdin), and keeps the connection open until the
end. The server answers `A` as soon as it has the request (until then nothing ran: a client
that hears nothing connects itself), then `S` once the remote command runs or `F` (message)
if it did not start it (then the client connects itself too), then `O`/`e` (stdout/stderr
bytes) and `X` (exit status). After `A`, a connection that ends before `X` is a lost
connection, never a reason to run the command again. `Q` instead of `R` retires the server:
it takes no new commands and ends once those under way are done.
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

    from radops.config import Settings
    from radops.ssh import HostSpec, SSHConnection

DEFAULT_PERSIST_S = 300
MAX_PERSIST_S = 7 * 24 * 3600
_FRAME = struct.Struct(">BI")
_CHUNK = 1 << 16
_ACCEPT_POLL_S = 1.0
# Longer than the server's own wait to open a session (radops.ssh.CONNECT_TIMEOUT_S).
START_TIMEOUT_S = 30.0
SOCKET_TIMEOUT_S = 5.0  # to connect to the server and hear back that it took the request
REQUEST_TIMEOUT_S = 10.0  # for a client to send its request once connected
MAX_SOCKET_PATH = 100  # bytes; unix socket paths are limited to 104 (macOS) or 108 (Linux)


class MuxUnavailable(Exception):
    """No shared connection could start the command; the caller connects itself."""


def parse_persist(value: str) -> int:
    """`ssh_persist` as seconds: a whole number from 0 (off) to a week."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_PERSIST_S:
        raise UsageError(
            f"invalid ssh_persist {value!r}: give seconds, 0 to {MAX_PERSIST_S} (0 turns it off)"
        )
    return int(text)


def persist_seconds(settings: Settings) -> int:
    """How long an idle shared connection stays open: RADOPS_SSH_PERSIST, the setting, 300."""
    from radops.config import resolve_setting

    value = resolve_setting(settings, "ssh_persist")
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
    path = directory / (hashlib.sha256(key.encode()).hexdigest()[:20] + ".sock")
    return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH else None


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


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(SOCKET_TIMEOUT_S)  # a stopped server's full backlog must not hang us
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def probe(path: Path) -> bool:
    """Does a shared connection answer at `path`?"""
    try:
        _connect(path).close()
    except OSError:
        return False
    return True


def retire(path: Path) -> None:
    """Ask the server at `path`, if any, to take no more commands (those under way finish)."""
    with contextlib.suppress(OSError):
        sock = _connect(path)
        with sock:
            _send(sock, b"Q")


class MuxCommand:
    """One remote command through the shared connection.

    Creating it sends the argv and waits until the remote command runs; it raises
    MuxUnavailable if that did not happen (nothing ran: the caller connects itself).
    """

    def __init__(self, path: Path, argv: list[str], display: str) -> None:
        self.display = display
        try:
            self.sock = _connect(path)
        except OSError as e:  # no server: nothing ran
            raise MuxUnavailable(str(e)) from e
        try:
            _send(self.sock, b"R", json.dumps(argv).encode())
            self.reader = self.sock.makefile("rb")
            taken = _read_frame(self.reader)
        except OSError as e:  # the server did not take the request: nothing ran
            self.sock.close()
            raise MuxUnavailable(str(e)) from e
        if taken is None or taken[0] != b"A":
            self.sock.close()
            raise MuxUnavailable(taken[1].decode(errors="replace") if taken else "no answer")
        try:
            self.sock.settimeout(START_TIMEOUT_S)
            started = _read_frame(self.reader)
            self.sock.settimeout(None)  # then output may take hours (logs --follow)
        except OSError:
            started = None
        if started is not None and started[0] == b"F":  # the server did not start it
            self.sock.close()
            raise MuxUnavailable(started[1].decode(errors="replace"))
        if started is None or started[0] != b"S":
            # The server took the request and may have started the command: running it again
            # could start a job twice, so this is an error, not a fallback.
            self.sock.close()
            raise EngineUnreachableError(
                f"the shared SSH connection to {display} failed while starting a command",
                "Check with `radops executors jobs`, then run it again; "
                "`pkill -f radops.ssh_mux` ends stuck shared connections.",
            )

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
            env=_child_env(),
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(settings).encode())
        process.stdin.close()


def _child_env() -> dict[str, str]:
    """This environment, with this radops first on the import path (from "/" as cwd)."""
    here = str(Path(__file__).resolve().parent.parent)
    paths = [here, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


# The server side -----------------------------------------------------------------------------


class _Server:
    def __init__(self, conn: SSHConnection, listener: socket.socket, path: Path, seconds: int):
        self.conn = conn
        self.listener = listener
        self.path = path
        self.inode = path.stat().st_ino
        self.seconds = seconds
        self.lock = threading.Lock()
        self.active = 0
        self.last_used = time.monotonic()
        self.retired = threading.Event()
        self.relays: list[threading.Thread] = []
        self._trusted_files: tuple[tuple[str, float, int], ...] | None = None

    def alive(self) -> bool:
        transport = self.conn.client.get_transport()
        return transport is not None and transport.is_active()

    def serve(self) -> None:
        """Accept commands until idle for `seconds`, retired, or the SSH connection drops."""
        self.listener.settimeout(_ACCEPT_POLL_S)
        while self.alive() and not self.retired.is_set():
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
            relay = threading.Thread(target=self._handle, args=(client,), daemon=True)
            relay.start()
            self.relays.append(relay)

    def finish(self) -> None:
        """Stop taking commands, then let the ones under way end (each ends with its stream)."""
        self.retire()
        self.listener.close()
        for relay in self.relays:
            while relay.is_alive() and self.alive():
                relay.join(_ACCEPT_POLL_S)

    def retire(self) -> None:
        """New commands connect themselves from now on (the socket goes away at once)."""
        from filelock import FileLock, Timeout

        self.retired.set()
        with contextlib.suppress(Timeout, OSError), FileLock(_lock_path(self.path), timeout=10):
            if self.path.stat().st_ino == self.inode:  # still ours, not a successor's
                self.path.unlink()

    def _handle(self, client: socket.socket) -> None:
        try:
            self._relay(client)
        except (OSError, RadopsError, ValueError):
            pass  # the client left, or the connection dropped: the client reports it
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)  # wakes the stdin reader
            client.close()
            with self.lock:
                self.active -= 1
                self.last_used = time.monotonic()

    def _relay(self, client: socket.socket) -> None:
        from radops.ssh import _drain

        client.settimeout(REQUEST_TIMEOUT_S)
        reader = client.makefile("rb")
        request = _read_frame(reader)
        client.settimeout(None)
        if request is not None and request[0] == b"Q":
            self.retire()  # a fresh direct connection replaces this one
            return
        if request is None or request[0] != b"R":
            return
        argv = json.loads(request[1])
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            _send(client, b"F", b"bad request")
            return
        _send(client, b"A")  # until here nothing ran: the client may connect itself
        if not self._host_key_still_trusted():
            _send(client, b"F", b"the host key is no longer trusted")
            self.retire()
            return
        try:
            channel = self.conn._session()
        except RadopsError as e:  # nothing ran; the connection is likely dead: step aside
            _send(client, b"F", str(e).encode())
            self.retire()
            return
        with channel:
            try:
                self.conn._exec(channel, argv)
            except RadopsError:
                self.retire()  # the command may have started: the client reports an error
                return
            _send(client, b"S")
            feeder = threading.Thread(target=_feed, args=(reader, channel), daemon=True)
            feeder.start()
            for stream, data in _drain(channel):
                _send(client, b"e" if stream == "stderr" else b"O", data)
            status = channel.recv_exit_status()
            if status != -1:  # -1: the connection dropped; closing says so to the client
                _send(client, b"X", str(status).encode())

    def _host_key_still_trusted(self) -> bool:
        """Is the key this connection verified still in a known-hosts file (not removed since,
        e.g. by `ssh-keygen -R` or `gcp delete`)? Re-read only when a file changed."""
        from radops.ssh import known_host_keys

        files = [Path("~/.ssh/known_hosts").expanduser(), self.conn.policy.known_hosts]
        stamp = tuple((str(f), *_mtime_size(f)) for f in files)
        if stamp == self._trusted_files:
            return True
        trusted = self.conn.verified_key_is_known(known_host_keys(files))
        self._trusted_files = stamp if trusted else None
        return trusted


def _mtime_size(path: Path) -> tuple[float, int]:
    try:
        info = path.stat()
    except OSError:
        return (0.0, -1)
    return (info.st_mtime, info.st_size)


def _feed(reader: BinaryIO, channel: paramiko.Channel) -> None:
    """Client stdin frames -> the remote command's stdin. After `E`, keep reading: the client
    going away (Ctrl-C on `logs --follow`, a closed pipe) closes the remote command."""
    try:
        while (frame := _read_frame(reader)) is not None:
            kind, payload = frame
            if kind == b"E":
                channel.shutdown_write()
            elif kind == b"I":
                channel.sendall(payload)
    except (OSError, ValueError):
        pass
    channel.close()


def _same_user(client: socket.socket) -> bool:
    """Does the peer run as this user? (Linux; elsewhere the 0700 folder is the guard.)"""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return True
    try:
        creds = client.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def _lock_path(path: Path) -> str:
    return str(path) + ".lock"


def _listen(path: Path) -> socket.socket | None:
    """Bind the socket, unless a live server already answers there (then None)."""
    from filelock import FileLock, Timeout

    try:
        with FileLock(_lock_path(path), timeout=10, mode=0o600):
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
    server = _Server(conn, listener, path, int(settings["seconds"]))
    try:
        server.serve()
    finally:
        server.finish()
        conn.close()


if __name__ == "__main__":
    main()
