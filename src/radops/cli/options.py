"""Arguments and options that several commands share, so they read the same everywhere."""

from __future__ import annotations

from typing import Literal

import typer

JSON_OPT = typer.Option(False, "--json", help="Print JSON for scripts.")


def complete_executor(incomplete: str) -> list[str]:
    """Shell completion: registered executor names (the config file only, no connection)."""
    from radops.api import list_executors

    try:
        names = [spec.name for spec in list_executors()]
    except Exception:  # completion must never print an error into the user's command line
        return []
    return [name for name in names if name.startswith(incomplete)]


def complete_job(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: the ids and names of the jobs on the executor named before it (one
    `jobs` call; an unknown host key is refused, never asked about)."""
    from radops.api import open_session

    name = ctx.params.get("executor")
    if not name:
        return []
    try:
        with open_session(str(name)) as session:
            jobs = session.jobs()
    except Exception:  # offline, unknown executor, host key: no completions, no noise
        return []
    words = [job.id for job in jobs] + [job.name for job in jobs if job.name]
    return [word for word in words if word.startswith(incomplete)]


def complete_setting(incomplete: str) -> list[str]:
    """Shell completion: the setting names `config set/unset` take."""
    from radops.plainconfig import SETTINGS_ENV

    return [key for key in SETTINGS_ENV if key.startswith(incomplete)]


EXECUTOR_ARG = typer.Argument(
    ...,
    metavar="EXECUTOR",
    help="Executor name (see `radops executors list`).",
    autocompletion=complete_executor,
)
JOB_ARG = typer.Argument(
    ...,
    metavar="JOB_ID",
    help="Job id printed by `run` (a unique prefix is enough), or the job's unique --name.",
    autocompletion=complete_job,
)


def check_build_place(value: str) -> Literal["local", "remote"]:
    """`--build`'s value, checked: local or remote."""
    from radops.errors import UsageError

    if value == "local":
        return "local"
    if value == "remote":
        return "remote"
    raise UsageError(f"invalid --build {value!r}: use local or remote")
