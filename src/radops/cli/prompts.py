"""Questions the CLI asks: values missing from flags, and whether to trust a new host key."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from radops.errors import UsageError

if TYPE_CHECKING:
    from radops.api.session import Session
    from radops.executors.model import ConnectOptions


def ask(value: str | None, prompt: str, flag: str, default: str | None = None) -> str:
    """The flag's value, else the answer to a prompt.

    On a terminal the prompt is shown; answers piped in by a script are read a line each with
    no prompt mixed into the output. An empty answer, or none, takes the default if there is one.
    """
    if value is not None:
        return value
    if sys.stdin.isatty():
        from radops.cli.render import visible

        answer: str = typer.prompt(visible(prompt), default=default, err=True)
        return answer.strip()
    line = sys.stdin.readline().strip()
    if line or default is not None:
        return line or str(default)
    raise UsageError(f"no answer for {prompt!r} (stdin closed)", f"Give it with {flag}.")


def confirm(question: str, refusal: str, yes: bool) -> None:
    """Go on if `yes` (`--yes`) or the user says yes on a terminal. Without a terminal, refuse
    with `refusal` (a usage error: scripts pass --yes). A "no" exits 0, as docker's prompts
    do: nothing failed, the user chose; nothing was changed."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(refusal, "Pass --yes.")
    from radops.cli.render import visible

    if not typer.confirm(visible(question), default=False, err=True):
        raise typer.Exit(0)


def confirm_host_key(host: str, key_type: str, fingerprint: str) -> bool:
    """Ask on the terminal whether to trust an unknown SSH host key."""
    from radops.cli.render import print_line

    print_line(f"The authenticity of host {host!r} can't be established.", err=True)
    print_line(f"{key_type} key fingerprint is {fingerprint}.", err=True)  # the remote's words
    return typer.confirm("Trust this key and continue connecting?", default=False, err=True)


def connect_options(accept_host_key: bool = False) -> ConnectOptions:
    """How a command may trust an unknown host key: the flag, else a question on a terminal
    (without one, an unknown key is refused)."""
    from radops.executors.model import ConnectOptions

    ask_user = confirm_host_key if sys.stdin.isatty() else None
    return ConnectOptions(trust_new_host_key=accept_host_key, confirm_host_key=ask_user)


def open_named(name: str, accept_host_key: bool = False) -> Session:
    """Executor `name` for a command: an unknown host key asked about on a terminal, what the
    user should know beside a result (a queued job's wait) on stderr, escaped."""
    from radops.api.session import open_session
    from radops.cli.render import print_notice

    return open_session(name, connect_options(accept_host_key), notices=print_notice)
