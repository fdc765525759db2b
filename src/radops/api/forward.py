"""Ports of a running job, answered on 127.0.0.1 here: each connection made here opens a new
stream to the job (straight to the container locally, a channel of the SSH connection to a
remote machine) and the two are pumped both ways by threads, until the forward is closed."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from radops.errors import RadopsError, UsageError

if TYPE_CHECKING:
    from radops.api.session import Session
    from radops.executors.model import PortStream

_CHUNK = 1 << 16


class PortForward:
    """The job's ports (port, local port; 0: any free one) on 127.0.0.1 here. Only this
    machine's users can reach them (127.0.0.1), but every one of them can."""

    def __init__(
        self,
        session: Session,
        job: str,
        ports: list[tuple[int, int]],
        on_error: Callable[[str], None],
    ) -> None:
        self.on_error = on_error  # a connection here that could not reach the job's port
        self.listeners: list[socket.socket] = []
        # (port in the job, port here), as bound
        self.bound: list[tuple[int, int]] = []
        try:
            for port, local in ports:
                opener = session.port_opener(job, port)
                listener = _listen(local, port)
                self.listeners.append(listener)
                self.bound.append((port, listener.getsockname()[1]))
                threading.Thread(
                    target=self._serve, args=(listener, opener, port), daemon=True
                ).start()
        except BaseException:
            self.close()
            raise

    def _serve(self, listener: socket.socket, opener: Callable[[], PortStream], port: int) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed: the forward is ending
                return
            try:
                remote = opener()
            except ConnectionRefusedError:  # every kind: a socket's, or sshd's "Connect failed"
                self.on_error(
                    f"cannot reach port {port} of the job: nothing listens on port {port} in "
                    "the job (a server there must listen on 0.0.0.0, not 127.0.0.1)"
                )
                client.close()
                continue
            except Exception as e:  # another OSError; the SSH connection lost (a RadopsError)
                message = e.message if isinstance(e, RadopsError) else str(e) or type(e).__name__
                self.on_error(f"cannot reach port {port} of the job: {message}")
                client.close()
                continue
            for source, sink in ((client, remote), (remote, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()

    def __enter__(self) -> PortForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _listen(local: int, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", local))
    except OSError as e:
        listener.close()
        raise UsageError(
            f"cannot listen on 127.0.0.1:{local} here: {e.strerror}",
            f"Pick another local port: {port}:LOCAL_PORT (0 for any free one).",
        ) from e
    listener.listen(16)
    return listener


def _pump(source: PortStream, sink: PortStream) -> None:
    """Copy one direction until it ends, then end both (a half-close is not needed here)."""
    try:
        while data := source.recv(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.close()
