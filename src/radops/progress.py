"""How long steps report what they do: one human-readable line at a time, and transfers as
bytes, rate and time left.

A step reports through a `ProgressCallback` (a line of text). A transfer asks the callback for
a meter (`transfer_meter`): a callback that can draw one (the CLI's, on a terminal: a bar on
the status line) gives its own; any other gets plain lines, at most one every
`PLAIN_EVERY_S`, and a summary when the transfer ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

ProgressCallback = Callable[[str], None]
PLAIN_EVERY_S = 5.0


class TransferMeter(Protocol):
    def update(self, done: int, total: int | None = None) -> None:
        """`done` bytes so far (of `total`, when it is known better now)."""

    def finish(self) -> None:
        """The transfer ended (successfully or not)."""


def human_bytes(n: float) -> str:
    """Bytes as docker shows them (decimal units): 1.33 GB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"  # not reached


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class TransferState:
    """Bytes, rate and time left of one transfer, for whoever draws it."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0.2 else 0.0

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(self.done / self.total, 1.0)

    def left(self) -> float | None:
        """Seconds left at the rate so far, when the total is known."""
        if not self.total or self.rate <= 0:
            return None
        return max(self.total - self.done, 0) / self.rate

    def text(self) -> str:
        """`LABEL: 120.0 MB of 1.6 GB (7%), 85.0 MB/s, 17s left`."""
        parts = [human_bytes(self.done)]
        if self.total:
            parts[0] += f" of {human_bytes(self.total)} ({self.fraction or 0:.0%})"
        if self.rate:
            parts.append(f"{human_bytes(self.rate)}/s")
        left = self.left()
        if left is not None:
            parts.append(f"{duration(left)} left")
        return f"{self.label}: " + ", ".join(parts)

    def summary(self) -> str:
        """`LABEL: 1.6 GB in 19s (84.0 MB/s)`."""
        elapsed = self.elapsed
        rate = f" ({human_bytes(self.done / elapsed)}/s)" if elapsed > 0.2 else ""
        return f"{self.label}: {human_bytes(self.done)} in {duration(elapsed)}{rate}"


class LineMeter:
    """A transfer as plain lines: at most one every `every` seconds, then a summary."""

    def __init__(
        self, progress: ProgressCallback, label: str, total: int | None, every: float
    ) -> None:
        self.progress = progress
        self.state = TransferState(label, total)
        self.every = every
        self.last = self.state.started
        self.finished = False

    def update(self, done: int, total: int | None = None) -> None:
        self.state.update(done, total)
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.progress(self.state.text())

    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.progress(self.state.summary())


def transfer_meter(progress: ProgressCallback, label: str, total: int | None) -> TransferMeter:
    """A meter for a transfer of `total` bytes (None: unknown) reported through `progress`."""
    opener = getattr(progress, "transfer", None)
    if opener is not None:
        meter: TransferMeter = opener(label, total)
        return meter
    return LineMeter(progress, label, total, PLAIN_EVERY_S)


def metered(chunks: Iterable[bytes], meter: TransferMeter) -> Iterator[bytes]:
    """`chunks` as they are, counted into `meter`; the meter finishes when they end."""
    done = 0
    try:
        for chunk in chunks:
            done += len(chunk)
            meter.update(done)
            yield chunk
    finally:
        meter.finish()
