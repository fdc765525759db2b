"""`radops executors rm|prune`: remove jobs, and the images no job needs any more."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import typer

from radops.cli.options import EXECUTOR_ARG, JSON_OPT
from radops.cli.prompts import confirm, open_named
from radops.cli.render import examples

app = typer.Typer()

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """`30m`, `12h`, `7d`, `2w` -> a timedelta."""
    from radops.errors import UsageError

    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"invalid --until {text!r}: use a duration such as 12h, 7d or 2w")
    return timedelta(seconds=int(match[1]) * _SECONDS[match[2]])


def size_text(size: int | None) -> str:
    """Bytes as docker shows them (decimal units): 1.33 GB."""
    from radops.progress import human_bytes

    return "an unknown amount" if size is None else human_bytes(size)


@app.command(
    "rm",
    epilog=examples(
        "radops executors rm gpu1 3f2a9c1b7d4e",
        "radops executors rm gpu1 3f2a 77b0 --force",
    ),
)
def rm(
    executor: str = EXECUTOR_ARG,
    job_ids: list[str] = typer.Argument(
        ..., metavar="JOB_ID", help="Jobs to remove: ids or unique id prefixes."
    ),
    force: bool = typer.Option(
        False, "--force", help="Also remove running jobs (they are killed first)."
    ),
    json_output: bool = JSON_OPT,
) -> None:
    """Remove jobs: their containers, logs and exit codes. Running jobs need --force.

    Every job is tried; the command fails (with the first error's exit code) if one could not
    be removed.
    """
    from radops.cli import render
    from radops.errors import RadopsError

    removed = []
    failed: RadopsError | None = None
    with open_named(executor) as ex:
        for job_id in job_ids:
            try:
                job = ex.remove(job_id, force=force)
            except RadopsError as e:
                render.print_error(e)
                failed = failed or e
                continue
            removed.append(job)
            if not json_output:
                render.print_line(f"Removed job {job.id} ({job.status}).", err=True)
    if json_output:
        render.print_json([job.to_json() for job in removed])
    if failed is not None:
        raise typer.Exit(failed.exit_code)


@app.command(
    "prune",
    epilog=examples(
        "radops executors prune gpu1",
        "radops executors prune gpu1 --until 7d --images --yes",
    ),
)
def prune(
    executor: str = EXECUTOR_ARG,
    until: str | None = typer.Option(
        None, "--until", metavar="AGE", help="Only jobs started more than AGE ago: 12h, 7d, 2w."
    ),
    images: bool = typer.Option(
        False,
        "--images",
        help="Also remove the radops images that no job left on the machine uses.",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_output: bool = JSON_OPT,
) -> None:
    """Remove ended jobs (and with --images unused radops images); report the space freed.

    Ended means exited, or never started. Running jobs are never touched. An image is removed
    only when no container on the machine (radops job or not) uses it once the ended jobs are
    gone.
    """
    from radops.cli import render

    older_than = datetime.now(timezone.utc) - parse_age(until) if until else None
    with open_named(executor) as ex:
        plan = ex.prune_plan(older_than, images)
        if not plan.jobs and not plan.images:
            if json_output:
                render.print_json({"jobs": [], "images": [], "space_freed": 0})
            else:
                render.print_line(f"Nothing to prune on {ex.name}.", err=True)
            return
        what = _what(len(plan.jobs), len(plan.images))
        size = sum(image.size for image in plan.images)
        sized = f" (images of up to {size_text(size)})" if plan.images else ""
        what = f"{what} from {ex.name}{sized}"
        confirm(f"Remove {what}?", f"not removing {what} without confirmation", yes)
        result = ex.prune(plan)
    if json_output:
        render.print_json(result.to_json())
        return
    done = _what(len(result.jobs), len(result.images))
    render.print_line(f"Removed {done} from {ex.name}; freed {size_text(result.space_freed)}.")
    skipped = len(plan.jobs) - len(result.jobs) + len(plan.images) - len(result.images)
    if skipped:
        render.print_line(
            f"{skipped} could not be removed (started again, or in use meanwhile).", err=True
        )


def _what(jobs: int, images: int) -> str:
    parts = [f"{jobs} job{'s' if jobs != 1 else ''}"]
    if images:
        parts.append(f"{images} image{'s' if images != 1 else ''}")
    return " and ".join(parts)
