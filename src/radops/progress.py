"""How long steps report what they do: one human-readable line at a time, and transfers as
bytes, rate and time left.

A step reports through a `ProgressCallback` (a line of text). A transfer asks the callback for
a meter (`transfer_meter`): a callback that can draw one (the CLI's, on a terminal: a bar on
the status line) gives its own; any other gets plain lines, at most one every
`PLAIN_EVERY_S`, and a summary when the transfer ends. Lines that only say how far a step is
(`pulled 3 of 7 layers`) go through `Passing`: all of them to a terminal's status line, at most
one every `PLAIN_EVERY_S` to plain output.

What a meter shows is never wrong: the rate counts from the first byte sent (not from the
wait for a local export to start), and a total that was only estimated reads `about`, and is
dropped (unknown) once more than it has gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

ProgressCallback = Callable[[str], None]
PLAIN_EVERY_S = 5.0
BRIEF_S = 1.0  # a `cp` that took less leaves no summary


class Same:
    """`update`'s default total: as known before."""


SAME = Same()


class TransferMeter(Protocol):
    def update(self, done: int, total: int | Same | None = SAME) -> None:
        """`done` bytes so far (of `total`, when it is known better now; None: unknown)."""

    def finish(self, ok: bool = True) -> None:
        """The transfer ended: whole (a summary), or cut short (its error says why)."""


def no_progress(line: str) -> None:
    """A callback that shows nothing."""


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
    """Bytes, rate and time left of one transfer, for whoever draws it. `estimate`: the total
    is a guess (shown as `about`), never shown once the bytes pass it."""

    def __init__(self, label: str, total: int | None, estimate: bool = False) -> None:
        self.label = label
        self.total = total or None
        self.estimate = estimate
        self.done = 0
        self.opened = time.monotonic()
        # The first bytes seen, and when: the rate counts from there.
        self.started: float | None = None
        self.base = 0

    def update(self, done: int, total: int | Same | None = SAME) -> None:
        if done > 0 and self.started is None:
            self.started, self.base = time.monotonic(), done
        self.done = done
        if not isinstance(total, Same):
            self.total = total or None

    @property
    def known_total(self) -> int | None:
        """The total, if it can still be right."""
        if self.total is None or self.done > self.total:
            return None
        return self.total

    @property
    def rate(self) -> float:
        """Bytes a second since the first ones were seen (0: not known yet)."""
        if self.started is None:
            return 0.0
        elapsed = time.monotonic() - self.started
        return (self.done - self.base) / elapsed if elapsed > 0.2 else 0.0

    @property
    def fraction(self) -> float | None:
        total = self.known_total
        return None if total is None else self.done / total

    def left(self) -> float | None:
        """Seconds left at the rate so far, when the total is known."""
        total = self.known_total
        if total is None or self.rate <= 0:
            return None
        return (total - self.done) / self.rate

    def text(self) -> str:
        """`LABEL: 120 MB of 1.6 GB (7%), 85 MB/s, 17s left`."""
        parts = [human_bytes(self.done)]
        total = self.known_total
        if total is not None:
            about = "about " if self.estimate else ""
            parts[0] += f" of {about}{human_bytes(total)} ({self.fraction or 0:.0%})"
        if self.rate:
            parts.append(f"{human_bytes(self.rate)}/s")
        left = self.left()
        if left is not None:
            parts.append(f"{duration(left)} left")
        return f"{self.label}: " + ", ".join(parts)

    def summary(self) -> str:
        """`LABEL: 1.6 GB in 19s (84 MB/s)`: the time those bytes took at that rate (a local
        export's wait before the first byte left out); `LABEL: 1.6 GB` when it was too quick
        to tell."""
        rate = self.rate
        moved = f"{self.label}: {human_bytes(self.done)}"
        if not rate:
            return moved
        return f"{moved} in {duration(self.done / rate)} ({human_bytes(rate)}/s)"


class Throttle:
    """A line now if none was let through in the last `every` seconds (else dropped)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.last: float | None = None

    def ready(self) -> bool:
        now = time.monotonic()
        if self.last is not None and now - self.last < self.every:
            return False
        self.last = now
        return True


class LineMeter:
    """A transfer as plain lines: at most one every `every` seconds, then a summary."""

    def __init__(
        self,
        progress: ProgressCallback,
        label: str,
        total: int | None,
        every: float,
        estimate: bool = False,
    ) -> None:
        self.progress = progress
        self.state = TransferState(label, total, estimate)
        self.throttle = Throttle(every)
        self.throttle.last = self.state.opened  # the step's own line was just shown
        self.finished = False

    def update(self, done: int, total: int | Same | None = SAME) -> None:
        self.state.update(done, total)
        if self.throttle.ready():
            self.progress(self.state.text())

    def finish(self, ok: bool = True) -> None:
        if not self.finished:
            self.finished = True
            if ok:
                self.progress(self.state.summary())


def on_terminal(progress: ProgressCallback) -> bool:
    """Whether `progress` draws on a terminal (a status line that passing lines only cross)."""
    return getattr(progress, "transfer", None) is not None


class Passing:
    """`progress` for lines that only say how far a step is: each one to a terminal's status
    line; otherwise at most one every `every` seconds, and (`flush`, when the step ends) the
    last one if it was held back."""

    def __init__(self, progress: ProgressCallback, every: float = PLAIN_EVERY_S) -> None:
        self.progress = progress
        self.throttle = None if on_terminal(progress) else Throttle(every)
        self.held: str | None = None

    def __call__(self, line: str) -> None:
        if self.throttle is None or self.throttle.ready():
            self.held = None
            self.progress(line)
        else:
            self.held = line

    def flush(self) -> None:
        if self.held is not None:
            line, self.held = self.held, None
            self.progress(line)


def transfer_meter(
    progress: ProgressCallback,
    label: str,
    total: int | None,
    estimate: bool = False,
    brief: float = 0.0,
) -> TransferMeter:
    """A meter for a transfer of `total` bytes (None: unknown; `estimate`: about that many)
    reported through `progress`. One that ends within `brief` seconds leaves no summary (a
    small `cp` prints nothing)."""
    opener = getattr(progress, "transfer", None)
    meter: TransferMeter
    if opener is not None:
        meter = opener(label, total, estimate)
    else:
        meter = LineMeter(progress, label, total, PLAIN_EVERY_S, estimate)
    return _Brief(meter, brief) if brief > 0 else meter


class _Brief:
    """A meter whose summary is left out when the transfer took less than `brief` seconds."""

    def __init__(self, meter: TransferMeter, brief: float) -> None:
        self.meter = meter
        self.deadline = time.monotonic() + brief

    def update(self, done: int, total: int | Same | None = SAME) -> None:
        self.meter.update(done, total)

    def finish(self, ok: bool = True) -> None:
        self.meter.finish(ok and time.monotonic() >= self.deadline)


def metered(chunks: Iterable[bytes], meter: TransferMeter) -> Iterator[bytes]:
    """`chunks` as they are, counted into `meter` as each is taken (sent); the meter finishes
    when they end."""
    done = 0
    try:
        for chunk in chunks:
            yield chunk
            done += len(chunk)
            meter.update(done)
    except BaseException:  # the source failed, or its reader stopped
        meter.finish(ok=False)
        raise
    meter.finish()
