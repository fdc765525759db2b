"""radops' Python API: everything the `radops` command does, for scripts and notebooks.

    import radops.api as radops

    job = radops.run("gpu1", "./train", "python train.py --lr 3e-4", gpus="1")
    print(radops.wait("gpu1", job.id))

`open_session(name)` keeps one executor open for several calls (one connection); the
functions of `radops.api.jobs` open one per call. Errors are `radops.errors.RadopsError`s,
each with a one-line message, an optional hint and the CLI's exit code. See docs/api.md.
"""

from typing import TYPE_CHECKING, Any

# `jobs` is both a module and, here, its function: imported now so that the name is the function.
from radops.api.jobs import get, jobs, logs, remove, run, stop, wait
from radops.api.requests import job_request
from radops.api.session import Session, open_session, open_spec

if TYPE_CHECKING:
    from radops.api import files, gcp, settings
    from radops.api.forward import PortForward
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

# The rest is imported on first use (PEP 562): a command that needs only a session
# (`radops executors jobs local`) does not load the GCP, forwarding and settings code.
_WHERE = {
    "PortForward": "radops.api.forward",
    **dict.fromkeys(
        (
            "add_executor",
            "check_executor",
            "connect_shell",
            "executor_spec",
            "list_executors",
            "owns_vm",
            "remove_executor",
            "shell_command",
            "update_executor",
        ),
        "radops.api.registered",
    ),
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in ("files", "gcp", "settings"):
        return importlib.import_module(f"radops.api.{name}")
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'radops.api' has no attribute {name!r}")
    return getattr(importlib.import_module(where), name)


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
