"""Pure functions that build docker CLI argv lists for a remote engine (quoted later, once)."""

from __future__ import annotations

import json

from radops.executors.docker.labels import label_pieces
from radops.executors.model import (
    LABEL_COMMAND,
    LABEL_CREATED_AT,
    LABEL_EXECUTOR,
    LABEL_GPU_UUIDS,
    LABEL_GPUS,
    LABEL_IMAGE,
    LABEL_JOB_ID,
    LABEL_NAME,
    LABEL_OPTIONS,
    LABEL_USER,
    LOG_DRIVER,
    LOG_OPTIONS,
)
from radops.executors.run_options import RunOptions

# One JSON object per job, shaped like the Engine API's container list entries.
_PS_FORMAT = (
    '{"State":{{json .State}},"Status":{{json .Status}},"Labels":{'
    + ",".join(
        f'"{label}":{{{{json (.Label "{label}")}}}}'
        for label in (
            LABEL_JOB_ID,
            LABEL_EXECUTOR,
            *label_pieces(LABEL_COMMAND),
            LABEL_IMAGE,
            LABEL_CREATED_AT,
            LABEL_NAME,
            *label_pieces(LABEL_OPTIONS),
            LABEL_USER,
            LABEL_GPUS,
            LABEL_GPU_UUIDS,
        )
    )
    + "}}"
)


def run_argv(
    docker: str,
    name: str,
    labels: dict[str, str],
    image: str,
    command: list[str],
    gpus: str | None,
    env_from_stdin: bool,
    options: RunOptions | None = None,
) -> list[str]:
    """`docker run -d`: labels and options first, then the image, then the job's own arguments."""
    # --pull never: a missing image is reported, and radops ships it (never a silent pull).
    argv = [docker, "run", "--detach", "--pull", "never", "--name", name]
    argv += ["--log-driver", LOG_DRIVER]
    for key, value in LOG_OPTIONS.items():
        argv += ["--log-opt", f"{key}={value}"]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    if env_from_stdin:
        # Values travel on stdin, never on a command line another user could read with `ps`.
        argv += ["--env-file", "/dev/stdin"]
    if gpus:
        argv += ["--gpus", gpus]
    if options is not None:
        argv += options.docker_argv()
    # docker stops reading options at the image, so the job's arguments are never docker's.
    return [*argv, image, *command]


def error_line(stderr: str) -> str:
    """The line of a docker CLI error that says what went wrong, without docker's decoration."""
    lines = [
        line.strip()
        for line in stderr.splitlines()
        if line.strip() and not line.startswith("See '")
    ]
    if not lines:
        return ""
    line = lines[-1].removeprefix("docker: ").removeprefix("Error: ")
    return line.removeprefix("Error response from daemon: ").rstrip(".")


def env_file(env: dict[str, str]) -> bytes:
    """The `--env-file` body for `env` (docker reads KEY=VALUE per line, no quoting)."""
    return "".join(f"{key}={value}\n" for key, value in env.items()).encode()


def ps_argv(docker: str) -> list[str]:
    return [
        docker,
        "ps",
        "--all",
        "--no-trunc",
        "--filter",
        f"label={LABEL_JOB_ID}",
        "--format",
        _PS_FORMAT,
    ]


def parse_ps(output: bytes) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in output.decode().splitlines() if line.strip()]
    for row in rows:
        row["Labels"] = {k: v for k, v in row["Labels"].items() if v}
    return rows


def logs_argv(
    docker: str, name: str, follow: bool, tail: int | None, timestamps: bool
) -> list[str]:
    argv = [docker, "logs"]
    if follow:
        argv.append("--follow")
    if tail is not None:
        argv += ["--tail", str(tail)]
    if timestamps:
        argv.append("--timestamps")
    return [*argv, name]
