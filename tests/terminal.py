"""Drive a command through a real pseudo-terminal, the way a person at a keyboard would."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time


class Terminal:
    """A child process whose stdin, stdout and stderr are one pty; expect text, type answers."""

    def __init__(
        self, argv: list[str], env: dict[str, str], size: tuple[int, int] = (24, 80)
    ) -> None:
        master, slave = os.openpty()
        # A new pty has no size (0x0); a real terminal has one. (rows, columns)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.output = b""

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += data
        return bool(data)

    def expect(self, text: str, timeout: float = 30) -> None:
        """Wait until `text` has appeared in the output (since the start)."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            alive = self._read(0.2) or self.proc.poll() is None
            if not alive or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; output so far:\n{self.text}")

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        while self._read(0.05):
            pass
        os.close(self.master)
        return self.proc.wait(timeout=max(deadline - time.monotonic(), 1))

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")
