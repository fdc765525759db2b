"""The one protocol of radops' remote scripts (the SSH executor's two-step scripts, a Slurm
login node's): the first step's result is a header line on stdout, `radops:ok` before the
second step's output, or `radops:error STATUS` followed by what went wrong. Lines before the
header (a login shell's banner, a build's heartbeats) are dropped, and so job output cannot fake
a header. A script that waits first may say why, before its header, in `radops:wait ...` lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from radops.executors.model import Stream

SCRIPT_OK = b"radops:ok"
SCRIPT_ERROR = b"radops:error "
SCRIPT_WAIT = b"radops:wait "


@dataclass(frozen=True)
class Header:
    """A script's header line and the bytes that followed it."""

    ok: bool
    status: int  # the first step's exit status (0 when ok)
    rest: bytes  # the second step's output, or the first step's error text

    @classmethod
    def find(cls, received: bytes) -> Header | None:
        """The header, once its line has arrived in `received`; else None."""
        start = 0
        while (end := received.find(b"\n", start)) != -1:
            line, rest = received[start:end], received[end + 1 :]
            if line == SCRIPT_OK:
                return cls(True, 0, rest)
            if line.startswith(SCRIPT_ERROR):
                code = line[len(SCRIPT_ERROR) :].strip()
                return cls(False, int(code) if code.isdigit() else 1, rest)
            start = end + 1
        return None


class HeaderReader:
    """Reads a script's output stream: holds it until the header has arrived, then passes the
    second step's output through as it comes (`feed`). `radops:wait` lines before the header
    are collected in `notices`. Stderr that overtook the header is passed on after it
    (`early_stderr`), or dropped when what a script writes there first is never the job's."""

    def __init__(self, early_stderr: bool = True) -> None:
        self.early_stderr = early_stderr
        self.received = b""
        self.held: list[bytes] = []  # stderr that overtook the header
        self.header: Header | None = None
        self.notices: list[str] = []
        self._scanned = 0  # where the next unread line of `received` starts

    def feed(self, stream: Stream, data: bytes) -> Iterator[tuple[Stream, bytes]]:
        if self.header is not None:
            yield stream, data
        elif stream == "stderr":
            if self.early_stderr:
                self.held.append(data)
        else:
            self.received += data
            self._collect_notices()
            found = Header.find(self.received)
            if found is None or not found.ok:
                return  # an error's whole text arrives before the script exits
            self.header = found
            for chunk in self.held:
                yield "stderr", chunk
            if found.rest:
                yield "stdout", found.rest

    def _collect_notices(self) -> None:
        while (end := self.received.find(b"\n", self._scanned)) != -1:
            line = self.received[self._scanned : end]
            if line == SCRIPT_OK or line.startswith(SCRIPT_ERROR):
                return  # the header: what follows is output, not notices
            if line.startswith(SCRIPT_WAIT):
                self.notices.append(line[len(SCRIPT_WAIT) :].decode(errors="replace"))
            self._scanned = end + 1
