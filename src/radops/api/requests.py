"""A `run` request from what a user types: the command split, the environment merged, every
option checked as `docker run` would, before anything is built or any machine is reached."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from radops.errors import UsageError

if TYPE_CHECKING:
    from radops.executors.model import JobRequest


def split_command(command: str | Sequence[str] | None) -> list[str]:
    """The container's arguments: a string is split as a shell would (no shell runs it), a
    sequence is taken as it is."""
    if command is None:
        return []
    if not isinstance(command, str):
        return list(command)
    try:
        return shlex.split(command)
    except ValueError as e:
        raise UsageError(f"cannot split COMMAND {command!r}: {e}") from None


def job_env(items: Sequence[str], files: Sequence[str]) -> dict[str, str]:
    """`--env-file`s in order, then `-e`s: a later value of a key wins, as with `docker run`.
    `KEY` alone takes this process's value."""
    from radops.executors.docker.options import parse_env
    from radops.executors.run_options import read_env_file

    environ = dict(os.environ)
    env: dict[str, str] = {}
    for file in files:
        env.update(read_env_file(file, environ))
    return {**env, **parse_env(list(items), environ)}


def wait_seconds(text: str, gpus: str | None) -> float:
    """`--wait` (no limit), `--wait=90`, `--wait=30s`, `10m`, `2h`: seconds to wait for GPUs."""
    from radops.errors import UsageError

    if not gpus:
        raise UsageError("--wait waits for free GPUs: it needs --gpus")
    if text in ("", "forever"):
        return float("inf")
    number, unit = (text[:-1], text[-1]) if text[-1:] in "smh" else (text, "s")
    if not number.isdigit():
        raise UsageError(f"invalid --wait {text!r}: use a time like 90, 30s, 10m or 2h")
    return int(number) * {"s": 1, "m": 60, "h": 3600}[unit]


def job_request(
    path: Path | str,
    command: str | Sequence[str] | None = None,
    *,
    dockerfile: str | None = None,
    env: Sequence[str] = (),
    env_files: Sequence[str] = (),
    gpus: str | None = None,
    wait: str | None = None,
    name: str | None = None,
    transfer: str = "auto",
    build_on: str | None = None,
    build_args: Sequence[str] = (),
    target: str | None = None,
    no_cache: bool = False,
    secrets: Sequence[str] = (),
    ssh: Sequence[str] = (),
    volumes: Sequence[str] = (),
    mounts: Sequence[str] = (),
    shm_size: str | None = None,
    ipc: str | None = None,
    publish: Sequence[str] = (),
    workdir: str | None = None,
    user: str | None = None,
    entrypoint: str | None = None,
    memory: str | None = None,
    cpus: str | None = None,
    network: str | None = None,
    labels: Sequence[str] = (),
    restart: str | None = None,
    nodes: int | None = None,
    time: str | None = None,
    partition: str | None = None,
    queue_args: Sequence[str] = (),
) -> JobRequest:
    """What `radops executors run` does with its flags, for a script: every value is checked
    here (a bad one costs no build). Options are spelled as the flags are (`-v` is `volumes`,
    `--slurm-arg` is `queue_args`); repeatable ones take sequences."""
    from radops.executors.docker.options import parse_build_args, parse_secrets, parse_ssh
    from radops.executors.model import JobRequest, QueueOptions
    from radops.executors.run_options import parse_run_options
    from radops.images.context import BuildOptions

    environ = dict(os.environ)
    request = JobRequest(
        context=Path(path),
        command=split_command(command),
        dockerfile=dockerfile or "Dockerfile",
        env=job_env(env, env_files),
        gpus=gpus,
        gpu_wait=None if wait is None else wait_seconds(wait, gpus),
        name=name,
        transfer=transfer,
        build_on=build_on,
        build=BuildOptions(
            build_args=parse_build_args(list(build_args), environ),
            target=target or None,
            no_cache=no_cache,
            secrets=parse_secrets(list(secrets)),
            ssh=parse_ssh(list(ssh), environ),
        ),
        options=parse_run_options(
            volumes=list(volumes),
            mounts=list(mounts),
            shm_size=shm_size,
            ipc=ipc,
            publish=list(publish),
            workdir=workdir,
            user=user,
            entrypoint=entrypoint,
            memory=memory,
            cpus=cpus,
            network=network,
            labels=list(labels),
            restart=restart,
        ),
        queue=QueueOptions(
            nodes=nodes, time=time, partition=partition, extra_args=tuple(queue_args)
        ),
    )
    _check_text(request)
    return request


def _check_text(request: JobRequest) -> None:
    """Arguments, environment and labels reach a job as UTF-8 text on every kind (the Engine
    API's JSON cannot carry other bytes: it would turn them into U+FFFD), so bytes that are
    not UTF-8 (a Linux argv can hold any) are refused here, the same way for every kind."""
    values = [(f"argument {n} of the command", a) for n, a in enumerate(request.command, 1)]
    for key, value in request.env.items():
        values += [(f"the name of -e {key!r}", key), (f"the value of -e {key!r}", value)]
    values += [(f"--label {key!r}", f"{key}={value}") for key, value in request.options.labels]
    values += [("--entrypoint", request.options.entrypoint or ""), ("--name", request.name or "")]
    for what, text in values:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            code = ord(text[e.start])  # a byte as Python keeps it (surrogateescape), or not
            bad = f"byte {code - 0xDC00:#04x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
            raise UsageError(
                f"{what} is not UTF-8 text ({bad} at character {e.start + 1})",
                "Arguments, environment values and labels reach the job as UTF-8 text on every "
                "executor; pass other bytes in a file.",
            ) from None
