"""A remote port forward: a port on the remote machine's loopback that reaches a port on this
machine's loopback through the SSH connection (`ssh -R 127.0.0.1:0:127.0.0.1:PORT`).

sshd listens on the remote's 127.0.0.1 only, on a port it picks; the listener closes when the
block ends, and with it every connection made through it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import paramiko

    from radops.ssh.connection import DirectConnection

_CHUNK = 1 << 18


class _Counter:
    """Bytes, added to from several pump threads at once."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


def _pump(source: Any, sink: Any, done: threading.Event, count: _Counter | None) -> None:
    """Copy `source` to `sink` until either side ends (adding the bytes to `count`)."""
    try:
        while not done.is_set():
            data = source.recv(_CHUNK)
            if not data:
                break
            sink.sendall(data)
            if count is not None:
                count.add(len(data))
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class Forward:
    """Joins each channel sshd opens to a new connection to 127.0.0.1:`port` here; `port`
    is the one on the remote's loopback once `remote_forward` has it."""

    def __init__(self, local_port: int) -> None:
        self.local_port = local_port
        self.port = 0
        self._sent = _Counter()  # bytes from here to there, over all connections
        self.done = threading.Event()
        self.open: list[tuple[paramiko.Channel, socket.socket]] = []
        self.lock = threading.Lock()

    def __call__(self, channel: paramiko.Channel) -> None:
        # Called on paramiko's transport thread: connect and hand off, never block long.
        try:
            local = socket.create_connection(("127.0.0.1", self.local_port), timeout=10)
        except OSError:
            channel.close()
            return
        local.settimeout(None)
        with self.lock:
            if self.done.is_set():
                channel.close()
                local.close()
                return
            self.open.append((channel, local))
        for source, sink, count in ((channel, local, None), (local, channel, self._sent)):
            pump = threading.Thread(target=_pump, args=(source, sink, self.done, count))
            pump.daemon = True
            pump.start()

    @property
    def sent(self) -> int:
        """Bytes sent from here to the remote so far."""
        return self._sent.value

    def close(self) -> None:
        with self.lock:
            self.done.set()
            pairs, self.open = self.open, []
        for channel, local in pairs:
            channel.close()
            local.close()


@contextlib.contextmanager
def remote_forward(direct: DirectConnection, local_port: int) -> Iterator[Forward]:
    """A listener on the remote's loopback (its `port`) that reaches 127.0.0.1:`local_port`
    here, closed with every connection through it when the block ends."""
    forward = Forward(local_port)
    forward.port = direct.listen_remote(forward)
    try:
        yield forward
    finally:
        with contextlib.suppress(Exception):  # a connection already lost has no listener left
            direct.stop_listening(forward.port)
        forward.close()
