"""`radops executors run`: build a folder's image (if it changed), ship it, start it as a job.

The command parses its flags into a request (`radops.api.job_request`, which checks every
value before anything is built), makes one call (`Session.run`), and renders the job; with
--follow it then streams the job's logs and exits with its exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from radops.cli.options import EXECUTOR_ARG, JSON_OPT, check_build_place
from radops.cli.prompts import open_named
from radops.cli.render import examples

if TYPE_CHECKING:
    from radops.api.session import Session

app = typer.Typer()


@app.command(
    "run",
    epilog=examples(
        'radops executors run local demos/remote_execution "testing remote execution"',
        'JOB=$(radops executors run gpu1 ./train "python train.py --lr 3e-4" --gpus all -q)',
        "radops executors run local ./app --follow -- python -c 'print(1)'",
        "radops executors run gpu1 ./train --build-arg TORCH=2.3 --target test -- pytest -x",
        "radops executors run gpu1 ./train --secret id=pip,src=$HOME/.netrc -- python train.py",
        "radops executors run gpu1 ./train --build remote -- python train.py",
    ),
)
def run(
    executor: str = EXECUTOR_ARG,
    path: Path = typer.Argument(
        ..., metavar="PATH", help="Folder with a Dockerfile: the build context."
    ),
    command: list[str] | None = typer.Argument(
        None,
        metavar="COMMAND",
        help=(
            "What the container gets as arguments, like `docker run IMAGE ARGS...`. One string is "
            "split like a shell would (no shell runs it); after `--`, several are passed as-is."
        ),
    ),
    file: str | None = typer.Option(
        None,
        "--file",
        help="Dockerfile to use, relative to PATH \\[default: PATH/Dockerfile].",
        rich_help_panel="Build",
    ),
    env: list[str] | None = typer.Option(
        None, "-e", "--env", help="KEY=VALUE (or KEY to pass this shell's value). Repeatable."
    ),
    gpus: str | None = typer.Option(
        None,
        "--gpus",
        help="GPUs, as `docker run --gpus`: all, 2, device=0. A count takes GPUs no running "
        "radops job (of any user) holds; device=... runs on the GPUs named, shared or not.",
    ),
    wait: str | None = typer.Option(
        None,
        "--wait",
        metavar="[=TIMEOUT]",  # a bare --wait is --wait=forever (cli._OPTIONAL_VALUES)
        help="With --gpus: if too few GPUs are free, wait here (e.g. --wait=2h) and start the "
        "job as soon as they are. A wait, not a queue: Ctrl-C leaves nothing behind.",
    ),
    name: str | None = typer.Option(None, "--name", help="A human label for the job."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Stream the logs, then exit with the job's exit code."
    ),
    transfer: str = typer.Option(
        "auto",
        "--transfer",
        help="How an SSH executor gets the image: registry (push, then pull there), tunnel "
        "(push into radops' own registry on this machine's loopback, pulled there through the SSH "
        "connection: after a code change only the new layer moves), ssh (docker save | load over "
        "the SSH connection) or auto (registry if one is configured, else tunnel, which uses ssh "
        "where it cannot run or would be slower; it says which ran).",
    ),
    build_on: str | None = typer.Option(
        None,
        "--build",
        help="Where to build: local (here, then ship the image) or remote (on the SSH "
        "executor's engine: only the build context travels, no Docker needed here). "
        "Default: the executor's setting (`executors set NAME --build remote`), else local.",
        rich_help_panel="Build",
    ),
    build_arg: list[str] | None = typer.Option(
        None,
        "--build-arg",
        help="KEY=VALUE for the Dockerfile's ARG (or KEY to pass this shell's value). "
        "Repeatable; part of the image's tag.",
        rich_help_panel="Build",
    ),
    target: str | None = typer.Option(
        None,
        "--target",
        help="Build only up to this stage of a multi-stage Dockerfile.",
        rich_help_panel="Build",
    ),
    no_cache: bool = typer.Option(
        False,
        "--no-cache",
        help="Build from scratch even if the image exists (then ship it again).",
        rich_help_panel="Build",
    ),
    secret: list[str] | None = typer.Option(
        None,
        "--secret",
        help="id=ID,src=PATH: a file the build reads with RUN --mount=type=secret,id=ID "
        "(BuildKit). Never stored in the image or its tag. Repeatable.",
        rich_help_panel="Build",
    ),
    ssh: list[str] | None = typer.Option(
        None,
        "--ssh",
        help="default (this shell's SSH agent) or ID=SOCKET_OR_KEY: SSH access for the build's "
        "RUN --mount=type=ssh, e.g. to clone a private repository (BuildKit). Repeatable.",
        rich_help_panel="Build",
    ),
    volume: list[str] | None = typer.Option(
        None,
        "-v",
        "--volume",
        help="HOST_PATH:CONTAINER_PATH[:ro]: a folder of the executor's machine in the job "
        "(an absolute path there, or a named volume). Repeatable.",
        rich_help_panel="Container",
    ),
    mount: list[str] | None = typer.Option(
        None,
        "--mount",
        help="As docker's: type=bind|volume|tmpfs,source=...,target=...[,readonly]. Repeatable.",
        rich_help_panel="Container",
    ),
    shm_size: str | None = typer.Option(
        None,
        "--shm-size",
        help="Size of /dev/shm, e.g. 8g (Docker's default of 64m kills PyTorch DataLoader "
        "workers).",
        rich_help_panel="Container",
    ),
    ipc: str | None = typer.Option(
        None,
        "--ipc",
        help="IPC namespace: host, private, shareable, none.",
        rich_help_panel="Container",
    ),
    publish: list[str] | None = typer.Option(
        None,
        "-p",
        "--publish",
        help="[IP:]HOST_PORT:CONTAINER_PORT: publish a port on the executor's machine. Repeatable.",
        rich_help_panel="Container",
    ),
    workdir: str | None = typer.Option(
        None,
        "-w",
        "--workdir",
        help="Working folder in the container (absolute).",
        rich_help_panel="Container",
    ),
    user: str | None = typer.Option(
        None,
        "-u",
        "--user",
        help="NAME, UID, NAME:GROUP or UID:GID to run as.",
        rich_help_panel="Container",
    ),
    entrypoint: str | None = typer.Option(
        None,
        "--entrypoint",
        help="Replace the image's ENTRYPOINT (one program).",
        rich_help_panel="Container",
    ),
    memory: str | None = typer.Option(
        None, "--memory", help="Memory limit, e.g. 16g.", rich_help_panel="Container"
    ),
    cpus: str | None = typer.Option(
        None, "--cpus", help="CPU limit, e.g. 4 or 1.5.", rich_help_panel="Container"
    ),
    network: str | None = typer.Option(
        None,
        "--network",
        help="Docker network: host, none, or a network's name.",
        rich_help_panel="Container",
    ),
    label: list[str] | None = typer.Option(
        None,
        "--label",
        help="KEY=VALUE label on the job's container. Repeatable.",
        rich_help_panel="Container",
    ),
    restart: str | None = typer.Option(
        None,
        "--restart",
        help="When the engine starts the job again, as `docker run --restart`: no, "
        "on-failure[:N], unless-stopped (also after the machine or its engine restarts, e.g. a "
        "spot VM resumed), always. A job keeps its GPUs across restarts. Slurm: unless-stopped "
        "is sbatch --requeue.",
        rich_help_panel="Container",
    ),
    env_file: list[str] | None = typer.Option(
        None,
        "--env-file",
        help="A file of KEY=VALUE lines, read here; values go to the job as -e ones do, never "
        "on a command line. Repeatable; -e wins.",
        rich_help_panel="Container",
    ),
    nodes: int | None = typer.Option(
        None,
        "--nodes",
        min=1,
        help="Slurm: nodes, one container on each (torchrun's MASTER_ADDR, NODE_RANK, ... set).",
        rich_help_panel="Slurm",
    ),
    time_limit: str | None = typer.Option(
        None,
        "--time",
        help="Slurm: time limit, e.g. 4:00:00 or 1-00:00:00.",
        rich_help_panel="Slurm",
    ),
    partition: str | None = typer.Option(
        None,
        "--partition",
        help="Slurm: partition (else the executor's default).",
        rich_help_panel="Slurm",
    ),
    slurm_arg: list[str] | None = typer.Option(
        None,
        "--slurm-arg",
        help="Slurm: one more sbatch option, e.g. --qos=high or --constraint=a100. Repeatable.",
        rich_help_panel="Slurm",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the job id."),
    json_output: bool = JSON_OPT,
) -> None:
    """Build PATH's image (skipped when unchanged), ship it, start it as a job, print the job id.

    On an SSH executor the image is built here, pushed to the registry and pulled there
    (or streamed over SSH); work whose result already exists is skipped. On a Slurm executor
    it is pushed to the registry and queued with sbatch; --gpus is N or TYPE:N per node there,
    --cpus and --memory are Slurm's request.
    """
    from radops.api import job_request
    from radops.cli import render
    from radops.errors import UsageError

    if follow and json_output:
        raise UsageError("--follow and --json cannot be combined")
    request = job_request(
        path,
        command[0] if command and len(command) == 1 else command,
        dockerfile=file,
        env=env or (),
        env_files=env_file or (),
        gpus=gpus,
        wait=wait,
        name=name,
        transfer=transfer,
        build_on=None if build_on is None else check_build_place(build_on),
        build_args=build_arg or (),
        target=target,
        no_cache=no_cache,
        secrets=secret or (),
        ssh=ssh or (),
        volumes=volume or (),
        mounts=mount or (),
        shm_size=shm_size,
        ipc=ipc,
        publish=publish or (),
        workdir=workdir,
        user=user,
        entrypoint=entrypoint,
        memory=memory,
        cpus=cpus,
        network=network,
        labels=label or (),
        restart=restart,
        nodes=nodes,
        time=time_limit,
        partition=partition,
        queue_args=slurm_arg or (),
    )
    with open_named(executor) as session:
        with render.progress_reporter(quiet) as progress:
            job = session.run(request, progress)
        if json_output:
            render.print_json(job.to_json())
        elif quiet:
            render.print_line(job.id)
        else:
            render.print_line(f"Job {job.id} started on {executor} (image {job.image})", err=follow)
            if not follow:
                render.print_line(f"Logs: radops executors logs {executor} {job.id}")
        if follow:
            _follow(session, job.id)


def _follow(session: Session, job_id: str) -> None:
    """Stream a job's logs until it ends, then exit with its exit code."""
    from radops.cli import render

    try:
        render.write_output(session.logs(job_id, follow=True))
        code = session.wait(job_id)
    except KeyboardInterrupt:
        render.print_line(
            f"\nStopped following; job {job_id} keeps running "
            f"(stop it with: radops executors stop {session.name} {job_id}).",
            err=True,
        )
        raise typer.Exit(130) from None
    raise typer.Exit(code)
