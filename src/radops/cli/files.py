"""`radops executors cp`: files and folders between here and a job, as `docker cp` copies them."""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from radops.cli.jobs import open_executor_named
from radops.cli.options import EXECUTOR_ARG
from radops.cli.render import examples
from radops.errors import UsageError

if TYPE_CHECKING:
    import tarfile

app = typer.Typer()

# `JOB:PATH`: a job id (or prefix, or name) before the first colon, as docker tells a container
# path from a local one; a local path with a colon can be written ./a:b.
_JOB_PATH = re.compile(r"^(?P<job>[A-Za-z0-9][A-Za-z0-9_.-]*):(?P<path>.*)$")


@app.command(
    "cp",
    epilog=examples(
        "radops executors cp gpu1 3f2a9c1b7d4e:/workspace/checkpoints ./checkpoints",
        "radops executors cp gpu1 ./config.yaml 3f2a:/workspace/config.yaml",
        "radops executors cp gpu1 3f2a:/workspace/logs - | tar -t",
    ),
)
def cp(
    executor: str = EXECUTOR_ARG,
    source: str = typer.Argument(..., metavar="SRC", help="JOB_ID:PATH, a local path, or -."),
    dest: str = typer.Argument(..., metavar="DEST", help="A local path, JOB_ID:PATH, or -."),
) -> None:
    """Copy files or folders between here and a job (running or ended), as `docker cp` does.

    One side is JOB_ID:PATH (a job id, a unique prefix of one), the other a local path. A folder
    is copied whole, into DEST if DEST is a folder, else as DEST; `SRC/.` copies a folder's
    contents. `-` is a tar archive on stdout (from a job) or stdin (to a job's folder). Paths
    on the job's mounted volumes work too. Everything streams: memory stays flat for GBs.
    """
    from_job, to_job = _JOB_PATH.match(source), _JOB_PATH.match(dest)
    if bool(from_job) == bool(to_job):
        raise UsageError(
            "give one side as JOB_ID:PATH and the other as a local path (or -)",
            "e.g. radops executors cp gpu1 3f2a:/workspace/out ./out",
        )
    with open_executor_named(executor) as ex:
        if from_job:
            chunks = ex.copy_from(from_job["job"], from_job["path"] or "/")
            if dest == "-":
                _to_stdout(chunks)
            else:
                extract(chunks, from_job["path"], Path(dest))
        else:
            assert to_job is not None
            if source == "-":
                ex.copy_archive_to(to_job["job"], _stdin_chunks(), to_job["path"] or "/")
            else:
                ex.copy_to(to_job["job"], Path(source), to_job["path"] or "/")


def _to_stdout(chunks: Iterator[bytes]) -> None:
    out = sys.stdout.buffer
    for chunk in chunks:
        out.write(chunk)
    out.flush()


def _stdin_chunks() -> Iterator[bytes]:
    stdin = sys.stdin.buffer
    while chunk := stdin.read(1 << 20):
        yield chunk


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of chunks (what tarfile's stream mode reads)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def extract(chunks: Iterator[bytes], source: str, dest: Path) -> None:
    """Unpack a `docker cp JOB:SOURCE -` stream at `dest` with `docker cp`'s rules.

    A file goes into `dest` if it is a folder, else becomes `dest` (its parent must exist).
    A folder goes into `dest` if it is one (its contents only for `SOURCE/.`), else becomes
    `dest`. Entries that would land outside the destination, device files and set-uid bits are
    refused (tarfile's `data` filter), so a job cannot write anywhere else here.
    """
    import tarfile

    written = str(dest)  # as typed: a trailing / says "a folder"
    dest = Path(os.path.abspath(dest))
    reader = io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 20)
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        first = tar.next()
        if first is None:
            raise UsageError(f"nothing to copy at {source!r}")
        root = first.name.split("/", 1)[0]
        base, top = _place(first, root, source, dest, written.endswith(("/", os.sep)))
        for member in _members(first, tar):
            rest = member.name[len(root) :].lstrip("/") if member.name != root else ""
            member.name = f"{top}/{rest}" if rest else top
            if member.islnk() and member.linkname.split("/", 1)[0] == root:
                linked = member.linkname[len(root) :].lstrip("/")
                member.linkname = f"{top}/{linked}" if linked else top
            try:
                tar.extract(member, path=base, filter="data")
            except tarfile.FilterError as e:
                raise UsageError(f"refusing to unpack {member.name!r}: {e}") from e


def _members(first: tarfile.TarInfo, tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    yield first
    while (member := tar.next()) is not None:
        yield member


def _place(
    first: tarfile.TarInfo, root: str, source: str, dest: Path, folder_only: bool
) -> tuple[Path, str]:
    """(folder to unpack in, name the archive's root gets there), by docker cp's rules."""
    is_dir = first.isdir()
    contents_only = source.rstrip("/").endswith("/.") or source == "."
    if dest.is_dir():
        if is_dir and contents_only:
            return dest.parent, dest.name  # the folder's contents merge into dest
        return dest, root
    if dest.exists():
        if is_dir:
            raise UsageError(f"cannot copy folder {source!r} to file {str(dest)!r}")
        return dest.parent, dest.name
    if folder_only and not is_dir:
        raise UsageError(f"the destination folder {str(dest)!r} does not exist")
    if not dest.parent.is_dir():
        raise UsageError(f"the destination's folder {str(dest.parent)!r} does not exist")
    return dest.parent, dest.name


@app.command(
    "exec",
    epilog=examples(
        "radops executors exec gpu1 3f2a9c1b7d4e -- nvidia-smi",
        "radops executors exec gpu1 3f2a -it -- bash",
        "echo 'print(1)' | radops executors exec gpu1 3f2a -i -- python",
    ),
)
def exec_(
    executor: str = EXECUTOR_ARG,
    job_id: str = typer.Argument(..., metavar="JOB_ID", help="A running job's id (or prefix)."),
    command: list[str] = typer.Argument(..., metavar="COMMAND", help="What to run, as-is."),
    interactive: bool = typer.Option(
        False, "--interactive", "-i", help="Send this shell's stdin to the command."
    ),
    tty: bool = typer.Option(
        False, "--tty", "-t", help="Run it on a terminal (for shells, editors, top); needs one."
    ),
) -> None:
    """Run a command inside a running job, like `docker exec`; exit with its exit code.

    Over SSH, -t opens a terminal on the machine through OpenSSH's client (window size and
    Ctrl-C reach the command), trusting the host keys radops trusts.
    """
    if tty and not sys.stdin.isatty():
        raise UsageError("-t needs a terminal, and stdin is not one", "Drop -t (keep -i).")
    with open_executor_named(executor) as ex:
        code = ex.exec(job_id, command, interactive=interactive, tty=tty)
    raise typer.Exit(code)
