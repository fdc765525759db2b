"""The shared connection's server: `python -m radops.ssh.mux.server`, settings as JSON on stdin.

It holds one `DirectConnection` and relays each client's command over a channel of its own.
Before each command it checks that the host key it verified is still in a known-hosts file; if
not, or if the connection fails, it retires: the socket goes away and later commands connect
themselves.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

from radops.errors import RadopsError
from radops.ssh.config import HostSpec
from radops.ssh.connection import DirectConnection, RemoteProcess
from radops.ssh.hostkeys import HostKeyPolicy, known_host_keys, user_known_hosts
from radops.ssh.mux import protocol
from radops.ssh.mux.sockets import lock_path, same_user

_ACCEPT_POLL_S = 1.0
REQUEST_TIMEOUT_S = 10.0  # for a client to send its request once connected


class Server:
    """Accepts commands on `listener` and runs them over `conn`, one thread each."""

    def __init__(
        self, conn: DirectConnection, listener: socket.socket, path: Path, seconds: int
    ) -> None:
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

    def serve(self) -> None:
        """Accept commands until idle for `seconds`, retired, or the SSH connection drops."""
        self.listener.settimeout(_ACCEPT_POLL_S)
        while self.conn.is_active() and not self.retired.is_set():
            with self.lock:
                idle = self.active == 0 and time.monotonic() - self.last_used > self.seconds
            if idle:
                return
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            if not same_user(client):
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
            while relay.is_alive() and self.conn.is_active():
                relay.join(_ACCEPT_POLL_S)

    def retire(self) -> None:
        """New commands connect themselves from now on (the socket goes away at once)."""
        from filelock import FileLock, Timeout

        self.retired.set()
        with contextlib.suppress(Timeout, OSError), FileLock(lock_path(self.path), timeout=10):
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
        client.settimeout(REQUEST_TIMEOUT_S)
        reader = client.makefile("rb")
        request = protocol.read_frame(reader)
        client.settimeout(None)
        if request is not None and request[0] == protocol.RETIRE:
            self.retire()  # a fresh direct connection replaces this one
            return
        if request is None or request[0] != protocol.REQUEST:
            return
        argv = protocol.decode_request(request[1])
        if argv is None:
            protocol.send(client, protocol.NOT_STARTED, b"bad request")
            return
        protocol.send(client, protocol.TAKEN)  # until here nothing ran: the client may go direct
        if not self._host_key_still_trusted():
            protocol.send(client, protocol.NOT_STARTED, b"the host key is no longer trusted")
            self.retire()
            return
        try:
            process = self.conn.session()
        except RadopsError as e:  # nothing ran; the connection is likely dead: step aside
            protocol.send(client, protocol.NOT_STARTED, str(e).encode())
            self.retire()
            return
        with process:
            try:
                process.start(argv)
            except RadopsError:
                self.retire()  # the command may have started: the client reports an error
                return
            protocol.send(client, protocol.STARTED)
            self._pipe(reader, client, process)

    def _pipe(self, reader: BinaryIO, client: socket.socket, process: RemoteProcess) -> None:
        feeder = threading.Thread(target=_feed, args=(reader, process), daemon=True)
        feeder.start()
        for stream, data in process.output():
            kind = protocol.STDERR if stream == "stderr" else protocol.STDOUT
            protocol.send(client, kind, data)
        # A dropped connection (no status) raises: closing the socket says so to the client.
        protocol.send(client, protocol.EXIT, str(process.exit_status()).encode())

    def _host_key_still_trusted(self) -> bool:
        """Is the key this connection verified still in a known-hosts file (not removed since,
        e.g. by `ssh-keygen -R` or `gcp delete`)? Re-read only when a file changed."""
        files = [user_known_hosts(), self.conn.policy.known_hosts]
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


def _feed(reader: BinaryIO, process: RemoteProcess) -> None:
    """Client stdin frames -> the remote command's stdin. After `STDIN_END`, keep reading: the
    client going away (Ctrl-C on `logs --follow`, a closed pipe) closes the remote command."""
    try:
        while (frame := protocol.read_frame(reader)) is not None:
            kind, payload = frame
            if kind == protocol.STDIN_END:
                process.close_stdin()
            elif kind == protocol.STDIN:
                process.write(payload)
    except (OSError, ValueError, RadopsError):
        pass
    process.close()


def listen(path: Path) -> socket.socket | None:
    """Bind the socket, unless a live server already answers there (then None)."""
    from filelock import FileLock, Timeout

    try:
        with FileLock(lock_path(path), timeout=10, mode=0o600):
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
            return _bind(path)
    except (Timeout, OSError):
        return None


def _bind(path: Path) -> socket.socket:
    import os

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old)
    listener.listen(16)
    return listener


def main() -> None:
    """Connect, listen, serve; settings as JSON on stdin (see `client.spawn`)."""
    settings = json.loads(sys.stdin.read())
    sys.stdin.close()
    path = Path(settings["socket"])
    # Known keys only (no one to ask), and only the pinned ones where the executor has pins.
    pinned = frozenset(settings.get("pinned", []))
    policy = HostKeyPolicy(Path(settings["known_hosts"]), pinned=pinned)
    conn = DirectConnection(HostSpec(**settings["host"]), policy)
    try:
        conn.open()  # connect first: the socket appears only when it can serve
    except RadopsError:
        return  # e.g. a key that needs a passphrase: commands keep connecting themselves
    listener = listen(path)
    if listener is None:
        conn.close()
        return
    server = Server(conn, listener, path, int(settings["seconds"]))
    try:
        server.serve()
    finally:
        server.finish()
        conn.close()


if __name__ == "__main__":
    main()
