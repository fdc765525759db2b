"""The radops command tree and `main()`, the one place errors become messages and exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import typer

from radops import __version__
from radops.cli import config as config_cli
from radops.cli import executors as executors_cli
from radops.cli import help_style

help_style.apply()

app = typer.Typer(
    name="radops",
    help="Run a folder's Docker image as a job on the local engine, an SSH host or a GCP VM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(executors_cli.app, name="executors")
app.add_typer(config_cli.app, name="config")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"radops {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run a folder's Docker image as a job on the local engine, an SSH host or a GCP VM.

    Start with `radops executors --help`.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn every RadopsError into one line, a hint and its exit code."""
    from radops.cli.render import print_error
    from radops.errors import RadopsError

    command = typer.main.get_command(app)
    code: Any = 0
    try:
        code = command.main(args=argv, prog_name="radops", standalone_mode=False)
    except RadopsError as e:
        _debug_traceback()
        print_error(e)
        code = e.exit_code
    except typer.Abort:
        print_error("aborted")
        code = 1
    except typer.TyperException as e:  # usage errors: bad option, missing argument, ...
        show = getattr(e, "show", None)
        if show is None:
            raise
        show()
        code = getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print_error("interrupted")
        code = 130
    except BrokenPipeError:
        # `radops ... | head`: the reader left; exit quietly like other Unix tools.
        _silence_stdout()
        code = 141
    except Exception as e:  # a bug: say so in one line, keep the traceback for RADOPS_DEBUG
        _debug_traceback()
        print_error(
            f"internal error: {type(e).__name__}: {e}",
            "Rerun with RADOPS_DEBUG=1 for the traceback, and please report it.",
        )
        code = 70
    sys.exit(code if isinstance(code, int) else 0)


def entry() -> None:
    """The `radops` command: `main()`, then exit without tearing the interpreter down.

    By then every command has closed what it opened (config lock, engine and SSH
    connections, files). What a normal exit would add is Python freeing its ~500 modules
    one by one: about 45 ms, some 6% of a local `run`. Output is flushed first; under a
    profiler or debugger the exit is a normal one.
    """
    try:
        main()
        code: Any = 0
    except SystemExit as e:
        code = e.code
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `radops ... | true`: the reader left before the last write
        code = code or 141
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # a profiler, debugger or coverage tool reports at a normal exit
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))


def _debug_traceback() -> None:
    if os.environ.get("RADOPS_DEBUG"):
        import traceback

        traceback.print_exc()


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
