"""`radops executors cp`: files and folders between here and a job, as `docker cp` copies them."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import typer

from radops.cli.options import EXECUTOR_ARG
from radops.cli.prompts import open_named
from radops.cli.render import examples
from radops.errors import UsageError

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
    Progress (bytes, rate, time left when the size is known) goes to stderr: a status line on a
    terminal, else a line every 5 s and a summary.

    From a job, links come as links, and nothing is written outside DEST or through a link:
    the copy is written beside DEST and moved into place once complete, so an error or Ctrl-C
    leaves DEST as it was.
    """
    from_job, to_job = _JOB_PATH.match(source), _JOB_PATH.match(dest)
    if bool(from_job) == bool(to_job):
        raise UsageError(
            "give one side as JOB_ID:PATH and the other as a local path (or -)",
            "e.g. radops executors cp gpu1 3f2a:/workspace/out ./out",
        )
    from radops.api import files
    from radops.cli.render import progress_reporter

    with open_named(executor) as session, progress_reporter(False) as progress:
        if from_job and dest == "-":
            _to_stdout(files.archive_from(session, from_job["job"], from_job["path"], progress))
        elif from_job:
            files.download(session, from_job["job"], from_job["path"], dest, progress)
        elif source == "-":
            assert to_job is not None
            chunks = _stdin_chunks()
            files.upload_archive(session, chunks, to_job["job"], to_job["path"], progress)
        else:
            assert to_job is not None
            files.upload(session, source, to_job["job"], to_job["path"], progress)


def _to_stdout(chunks: Iterator[bytes]) -> None:
    out = sys.stdout.buffer
    for chunk in chunks:
        out.write(chunk)
    out.flush()


def _stdin_chunks() -> Iterator[bytes]:
    stdin = sys.stdin.buffer
    while chunk := stdin.read(1 << 20):
        yield chunk


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
    with open_named(executor) as session:
        code = session.exec(job_id, command, interactive=interactive, tty=tty)
    raise typer.Exit(code)
