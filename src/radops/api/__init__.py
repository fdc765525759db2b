"""radops' Python API: everything the `radops` command does, for scripts and notebooks.

    import radops.api as radops

    job = radops.run("gpu1", "./train", "python train.py --lr 3e-4", gpus="1")
    print(radops.wait("gpu1", job.id))

`open_session(name)` keeps one executor open for several calls (one connection); the
functions of `radops.api.jobs` open one per call. Errors are `radops.errors.RadopsError`s,
each with a one-line message, an optional hint and the CLI's exit code. See docs/api.md.
"""

from radops.api import files, gcp, settings
from radops.api.forward import PortForward
from radops.api.jobs import get, jobs, logs, remove, run, stop, wait
from radops.api.registered import (
    add_executor,
    check_executor,
    connect_shell,
    executor_spec,
    list_executors,
    owns_vm,
    remove_executor,
    shell_command,
    update_executor,
)
from radops.api.requests import job_request
from radops.api.session import Session, open_session, open_spec

__all__ = [
    "PortForward",
    "Session",
    "add_executor",
    "check_executor",
    "connect_shell",
    "executor_spec",
    "files",
    "gcp",
    "get",
    "job_request",
    "jobs",
    "list_executors",
    "logs",
    "open_session",
    "open_spec",
    "owns_vm",
    "remove",
    "remove_executor",
    "run",
    "settings",
    "shell_command",
    "stop",
    "update_executor",
    "wait",
]
