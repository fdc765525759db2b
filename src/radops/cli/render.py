"""The only module that prints: tables, key/value views, progress, JSON and errors."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from radops.progress import SAME, Same

if TYPE_CHECKING:
    from rich.console import Console

    from radops.errors import RadopsError
    from radops.executors.model import Job, Stream
    from radops.progress import ProgressCallback, TransferMeter


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal (pipes, CI logs) do not squeeze tables into 80 columns.
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def examples(*lines: str) -> str:
    """A command's help epilog: one example per paragraph, brackets kept literal."""
    body = "\n\n".join(line.replace("[", "\\[") for line in lines)
    return f"[b]Examples[/b]\n\n{body}"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def print_line(text: str = "", *, err: bool = False) -> None:
    """Radops' own text, one line or several: everything but the line breaks that is not
    printable is shown escaped. Messages quote job ids, states, versions and errors that a
    remote machine sent, so every line radops writes goes through here (or `print_fields`,
    `print_table`, `print_error`) and is escaped exactly once, here. A job's own output is
    not radops' text: `write_output` passes it through byte for byte."""
    _write(visible_lines(text), err)


def _write(text: str, err: bool) -> None:
    (sys.stderr if err else sys.stdout).write(text + "\n")


def visible(text: str) -> str:
    """`text` with control and other unprintable characters shown as escapes (`\\x1b`), so a
    name or label read from a machine cannot move the cursor, recolour or retitle a terminal,
    nor break a table's lines."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def print_notice(line: str) -> None:
    """A line the core reports (a step, a notice) on stderr: kept on one line, escaped."""
    _write(visible(line), err=True)


def visible_lines(text: str) -> str:
    """`visible`, keeping the line breaks radops' own messages have."""
    return "\n".join(visible(line) for line in text.split("\n"))


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Aligned columns, like `docker ps`: plain text, so 1,000 rows print in milliseconds
    (a rich Table takes most of a second to lay them out), and cells are never reinterpreted:
    unprintable characters are shown escaped."""
    rows = [[visible(cell) for cell in row] for row in rows]
    widths = [max(len(cell) for cell in col) for col in zip(columns, *rows, strict=True)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [
        "   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def print_fields(fields: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in fields) + 1
    for key, value in fields:
        _write(visible(f"{key + ':':<{width}} {value}"), err=False)  # a field stays one line


def print_error(error: RadopsError | str, hint: str | None = None) -> None:
    message = error if isinstance(error, str) else error.message
    hint = hint if isinstance(error, str) else error.hint
    # Errors quote what machines said (docker's stderr, a registry's answer): shown escaped.
    _write(f"radops: error: {visible(message)}", err=True)
    if hint:
        _write(f"hint: {visible_lines(hint)}", err=True)


def write_output(chunks: Iterator[tuple[Stream, bytes]]) -> None:
    """Write log chunks to stdout/stderr as raw bytes: no decoding, no markup, no buffering."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    sys.stdout.flush()
    try:
        for stream, data in chunks:
            target = err if stream == "stderr" else out
            target.write(data)
            target.flush()
    except BrokenPipeError:
        # `radops ... logs | head`: the reader left. Exit quietly, as `cat` would (128 + SIGPIPE).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(141) from None


# Progress lines that stay on a terminal (the others only pass through the status line): radops'
# own steps, the legacy builder's steps, BuildKit's steps (`#5 [2/3] RUN ...`), warnings.
_KEPT = re.compile(r"(Building|Step|Started|Image|Pushing|Pulling|Warning)|#\d+ \[(?!internal)")


@contextmanager
def progress_reporter(quiet: bool) -> Iterator[ProgressCallback]:
    """A progress callback: a live status line on a terminal, plain lines on stderr otherwise."""
    if quiet:
        yield lambda line: None
        return
    if not sys.stderr.isatty():
        yield print_notice
        return
    from rich.markup import escape

    console = _console(stderr=True)
    with contextlib.ExitStack() as stack:

        class Reporter:
            """Draws the status line from the first line on: what comes before it (a
            question about a host key, say) is not hidden under it."""

            status: Any = None

            def _status(self) -> Any:
                if self.status is None:
                    self.status = stack.enter_context(console.status("Starting"))
                return self.status

            def __call__(self, line: str) -> None:
                line = visible(line)  # build output may carry terminal escapes
                status = self._status()
                if _KEPT.match(line):
                    console.print(f"[dim]{escape(line)}[/dim]")
                status.update(escape(line[: console.width - 4]))

            def transfer(
                self, label: str, total: int | None, estimate: bool = False
            ) -> TransferMeter:
                return _StatusMeter(console, self._status(), label, total, estimate)

        yield Reporter()


class _StatusMeter:
    """A transfer on the terminal's status line: a bar (when the size is known), bytes, rate
    and time left, redrawn at most ten times a second; its summary stays when it ends."""

    def __init__(
        self, console: Any, status: Any, label: str, total: int | None, estimate: bool
    ) -> None:
        from radops.progress import TransferState

        self.console = console
        self.status = status
        self.state = TransferState(visible(label), total, estimate)
        self.drawn = 0.0
        self.finished = False
        self._draw()  # from the start: a transfer that waits for its first byte shows it

    def update(self, done: int, total: int | Same | None = SAME) -> None:
        self.state.update(done, total)
        now = time.monotonic()
        if now - self.drawn >= 0.1:
            self.drawn = now
            self._draw()

    def _draw(self) -> None:
        from rich.markup import escape

        fraction = self.state.fraction
        bar = ""
        if fraction is not None:
            filled = int(fraction * 20)
            bar = "━" * filled + "╺" + "━" * (19 - filled) if filled < 20 else "━" * 20
            bar = f"[green]{bar[: filled + 1]}[/green][dim]{bar[filled + 1 :]}[/dim] "
        text = escape(self.state.text()[: self.console.width - 28])
        self.status.update(bar + text)

    def finish(self, ok: bool = True) -> None:
        from rich.markup import escape

        if not self.finished:
            self.finished = True
            if ok:
                self.console.print(f"[dim]{escape(self.state.summary())}[/dim]")


def command_text(argv: Sequence[str], width: int | None = None) -> str:
    text = shlex.join(argv) if argv else "(image default)"
    return text if width is None else _clip(text, width)


def age(created: datetime | None, now: datetime | None = None) -> str:
    """Compact age like `docker ps`: 45s, 12m, 3h, 2d."""
    if created is None:
        return "?"
    seconds = int(((now or datetime.now(timezone.utc)) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def jobs_table(jobs: Sequence[Job]) -> None:
    now = datetime.now(timezone.utc)
    # A scheduler's jobs: its view too, under its name.
    schedulers = sorted({job.queue.scheduler for job in jobs if job.queue is not None})
    rows = [
        (
            job.id,
            *([queue_text(job)] if schedulers else []),
            _clip(job.name or "", 40),
            job.user or "",
            job.status,
            "" if job.exit_code is None else str(job.exit_code),
            age(job.created_at, now),
            command_text(job.command, width=60),  # `--json` has it whole
            job.image,
        )
        for job in jobs
    ]
    queue_column = ["/".join(schedulers).upper()] if schedulers else []
    columns = ("JOB ID", *queue_column, "NAME", "USER", "STATUS", "EXIT", "AGE", "COMMAND",
               "IMAGE")  # fmt: skip
    print_table(columns, rows)


def queue_text(job: Job) -> str:
    """A queued job as its scheduler sees it: `12 PENDING (Resources)`, `12 RUNNING on gpu07`."""
    queue = job.queue
    if queue is None:
        return ""
    text = f"{queue.job_id} {queue.state}".strip()
    if queue.reason:
        text += f" ({queue.reason})"
    if queue.nodes and queue.state != "PENDING":
        text += f" on {queue.nodes}"
    return text


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
