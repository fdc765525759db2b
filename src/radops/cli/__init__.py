"""The radops command tree and `main()`, the one place errors become messages and exit codes."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from typing import Any

import typer

from radops import __version__
from radops.cli import coercion, help_style
from radops.cli import config as config_cli
from radops.cli import executors as executors_cli

help_style.apply()
coercion.apply()

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

    args = _optional_values(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(_tree_for(args))
    code: Any = 0
    try:
        code = command.main(args=args, prog_name="radops", standalone_mode=False)
    except RadopsError as e:
        _debug_traceback()
        print_error(e)
        code = e.exit_code
    except typer.Abort:
        _debug_traceback()
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


# Options whose value may be left out (`run --wait` or `--wait=2h`), and the value they then
# take. Typer has no such option, so a bare one gets its value here, before the parser sees it.
_OPTIONAL_VALUES = {"--wait": "forever"}


# A word after such an option that reads as its value (`--wait 2h`): taken as the value, as the
# user meant, rather than becoming the job's command while the option waits forever.
_LOOKS_LIKE_VALUE = {"--wait": re.compile(r"\d+[smh]?|forever")}


def _optional_values(args: list[str]) -> list[str]:
    out: list[str] = []
    words = iter(args)
    for arg in words:
        if arg == "--":  # the job's own arguments
            out += [arg, *words]
            break
        if arg not in _OPTIONAL_VALUES:
            out.append(arg)
            continue
        value = _OPTIONAL_VALUES[arg]
        following = next(words, None)
        if following is not None and _LOOKS_LIKE_VALUE[arg].fullmatch(following):
            value, following = following, None
        out.append(f"{arg}={value}")
        if following is not None:
            out.append(following)
    return out


def _tree_for(args: list[str]) -> typer.Typer:
    """The command tree, with only the branch that `args` names when it names one.

    Typer turns every command of the tree into a click command (signatures, type hints,
    parameters) on every run: about 45 ms, a twentieth of a local re-submit, of which the
    command being run needs one twenty-eighth. A word that names nothing (a typo, an option,
    nothing at all) keeps the whole tree, so `--help` lists everything and click's errors
    suggest every name; so does shell completion.
    """
    if os.environ.get("_RADOPS_COMPLETE"):
        return app
    words = []
    for arg in args:
        if arg.startswith("-"):
            break
        words.append(arg)
    return _branch(app, words) or app


def _branch(group: typer.Typer, words: list[str]) -> typer.Typer | None:
    """A copy of `group` holding only what words[0] names in it (itself trimmed by the next
    words if it is a group); None if words[0] names nothing there."""
    import copy

    if not words:
        return None
    word = words[0]
    commands = [c for c in group.registered_commands if _name(c) == word]
    groups = []
    for info in group.registered_groups:
        sub = info.typer_instance
        if sub is None:
            continue
        name = _group_name(info)
        if name is not None:  # a named group: `radops executors gcp ...`
            if name == word:
                groups.append(copy.copy(info))
                groups[-1].typer_instance = _branch(sub, words[1:]) or sub
        else:  # a group added without a name: its commands are this group's own
            found = [c for c in sub.registered_commands if _name(c) == word]
            if found:
                merged = copy.copy(sub)
                merged.registered_commands, merged.registered_groups = found, []
                groups.append(copy.copy(info))
                groups[-1].typer_instance = merged
    if not commands and not groups:
        return None
    trimmed = copy.copy(group)
    trimmed.registered_commands, trimmed.registered_groups = commands, groups
    return trimmed


def _group_name(info: Any) -> str | None:
    """A sub-group's name as Typer finds it (add_typer's, else the Typer's own); None: its
    commands are merged into the parent's."""
    for name in (info.name, getattr(info.typer_instance.info, "name", None)):
        if isinstance(name, str):
            return name
    return None


def _name(command: Any) -> str:
    return str(command.name or typer.main.get_command_name(command.callback.__name__))


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

        from radops.cli.render import print_line

        # Exception messages quote remotes too: escaped like every other line radops writes.
        print_line(traceback.format_exc().rstrip("\n"), err=True)


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
