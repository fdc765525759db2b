"""`radops executors logs|jobs|inspect|stop`: follow the jobs on an executor.

Each command parses its arguments, makes one call into the core, and renders the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from radops.cli.options import EXECUTOR_ARG, JOB_ARG, JSON_OPT
from radops.cli.prompts import open_named
from radops.cli.render import examples

if TYPE_CHECKING:
    pass

app = typer.Typer()


@app.command(
    "logs",
    epilog=examples(
        "radops executors logs local 3f2a9c1b7d4e",
        "radops executors logs gpu1 3f2a --follow --tail 100",
    ),
)
def logs(
    executor: str = EXECUTOR_ARG,
    job_id: str = JOB_ARG,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming until the job ends."),
    tail: int | None = typer.Option(None, "--tail", "-n", min=0, help="Only the last N lines."),
    timestamps: bool = typer.Option(
        False, "--timestamps", "-t", help="Prefix each line with its time."
    ),
) -> None:
    """Print a job's output, byte for byte (stdout to stdout, stderr to stderr).

    One exception, Docker 20.10's: a line of 16 KiB or more comes back without its newline,
    joined to the next (its `local` log driver; fixed in Docker 23.0). On a Slurm executor,
    --follow first waits while the job is pending, saying why on stderr.
    """
    from radops.cli import render

    with open_named(executor) as session:
        chunks = session.logs(job_id, follow=follow, tail=tail, timestamps=timestamps)
        try:
            render.write_output(chunks)
        except KeyboardInterrupt:
            if not follow:
                raise
            raise typer.Exit(130) from None


@app.command(
    "jobs",
    epilog=examples(
        "radops executors jobs local",
        "radops executors jobs gpu1 --mine",
        "radops executors jobs gpu1 --json",
    ),
)
def jobs(
    executor: str = EXECUTOR_ARG,
    mine: bool = typer.Option(
        False, "--mine", help="Only the jobs started by this user on this machine (USER)."
    ),
    json_output: bool = JSON_OPT,
) -> None:
    """List the radops jobs on an executor, newest first, with who started each (USER)."""
    from radops.cli import render

    with open_named(executor) as session:
        found = session.jobs(mine)
    if json_output:
        render.print_json([job.to_json() for job in found])
    elif found:
        render.jobs_table(found)
    else:
        render.print_line(f"No jobs on {executor}.", err=True)


@app.command(
    "inspect",
    epilog=examples(
        "radops executors inspect gpu1 3f2a", "radops executors inspect gpu1 resnet50 --json"
    ),
)
def inspect(
    executor: str = EXECUTOR_ARG, job_id: str = JOB_ARG, json_output: bool = JSON_OPT
) -> None:
    """Show one job: status, who started it, its command, image and the options it ran with."""
    import json as json_module

    from radops.cli import render

    with open_named(executor) as session:
        job = session.get(job_id)
    if json_output:
        render.print_json(job.to_json())
        return
    fields = [
        ("job", job.id),
        ("name", job.name or ""),
        ("executor", job.executor),
        ("user", job.user or ""),
        ("status", job.status + ("" if job.exit_code is None else f" ({job.exit_code})")),
        *([(job.queue.scheduler, render.queue_text(job))] if job.queue else []),
        ("created", job.created_at.isoformat() if job.created_at else ""),
        ("command", render.command_text(job.command)),
        ("image", job.image),
        *[(f"gpu {g.index}", g.uuid) for g in job.gpus],
        *([("restarts", str(job.restarts))] if job.restarts is not None else []),
    ]
    fields += [(key, json_module.dumps(value)) for key, value in job.options.items()]
    render.print_fields(fields)


@app.command("stop", epilog=examples("radops executors stop gpu1 3f2a9c1b7d4e"))
def stop(
    executor: str = EXECUTOR_ARG,
    job_id: str = JOB_ARG,
    timeout: int = typer.Option(
        10, "--timeout", min=0, help="Seconds between SIGTERM and SIGKILL."
    ),
    json_output: bool = JSON_OPT,
) -> None:
    """Stop a running job (SIGTERM, then SIGKILL). Its logs and exit code stay."""
    from radops.cli import render

    with open_named(executor) as session:
        result = session.stop(job_id, timeout=timeout)
    job = result.job
    if json_output:
        render.print_json(job.to_json())
    elif not result.was_running:
        render.print_line(f"Job {job.id} was not running ({job.status}).", err=True)
    else:
        render.print_line(f"Stopped job {job.id} (exit code {job.exit_code}).", err=True)
