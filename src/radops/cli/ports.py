"""`radops executors forward|top`: reach a job's ports from here (TensorBoard, Jupyter), and
see what the machine's GPUs and jobs use."""

from __future__ import annotations

import re

import typer

from radops.cli.options import EXECUTOR_ARG, JSON_OPT
from radops.cli.prompts import open_named
from radops.cli.render import examples
from radops.errors import UsageError

app = typer.Typer()

_SPEC = re.compile(r"^(\d{1,5})(?::(\d{1,5}))?$")


def parse_forward(spec: str) -> tuple[int, int]:
    """`PORT` or `PORT:LOCAL_PORT` -> (the job's port, the local port; 0 = any free one)."""
    match = _SPEC.match(spec)
    if not match:
        raise UsageError(f"invalid port {spec!r}: use PORT or PORT:LOCAL_PORT, e.g. 6006:16006")
    port, local = int(match[1]), int(match[2] if match[2] is not None else match[1])
    if not 0 < port < 65536 or not 0 <= local < 65536:
        raise UsageError(f"invalid port {spec!r}: ports are 1-65535 (LOCAL_PORT 0: any free one)")
    return port, local


@app.command(
    "forward",
    epilog=examples(
        "radops executors forward gpu1 3f2a9c1b7d4e 6006",
        "radops executors forward gpu1 3f2a 8888:18888 6006:0",
    ),
)
def forward(
    executor: str = EXECUTOR_ARG,
    job_id: str = typer.Argument(..., metavar="JOB_ID", help="A running job's id (or prefix)."),
    ports: list[str] = typer.Argument(
        ..., metavar="PORT[:LOCAL_PORT]", help="The job's port, and the port here for it."
    ),
) -> None:
    """Reach ports of a running job from this machine, until Ctrl-C.

    Each PORT of the job answers on 127.0.0.1:LOCAL_PORT here (LOCAL_PORT defaults to PORT; 0
    picks a free one). On an SSH executor the traffic goes through the SSH connection
    (ProxyJump included); nothing needs publishing on the machine.

    127.0.0.1 is open to every user of this machine, not only you: on a shared machine, others
    can use the job's service while this runs. Give the service its own password or token
    (Jupyter's), or forward from a machine only you use.
    """
    import threading

    from radops.api.forward import PortForward
    from radops.cli import render

    wanted = [parse_forward(spec) for spec in ports]
    with (
        open_named(executor) as session,
        PortForward(session, job_id, wanted, render.print_notice) as forward,
    ):
        for port, bound in forward.bound:
            render.print_line(f"http://127.0.0.1:{bound} -> port {port} of job {job_id}")
        render.print_line("Forwarding; Ctrl-C to stop.", err=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            render.print_line("Stopped forwarding.", err=True)


@app.command(
    "top",
    epilog=examples("radops executors top gpu1", "radops executors top gpu1 --json | jq .gpus"),
)
def top(executor: str = EXECUTOR_ARG, json_output: bool = JSON_OPT) -> None:
    """Show GPU use and memory (nvidia-smi) and each running job's CPU and memory (docker stats).

    One reading, not a live view: run it under `watch` for that.
    """
    from radops.cli import render

    with open_named(executor) as session:
        report = session.top()
    if json_output:
        render.print_json(report.to_json())
        return
    if report.gpus is None:
        render.print_line(f"No GPUs: nvidia-smi does not run on {report.executor}'s machine.")
    else:
        render.print_table(
            ["GPU", "NAME", "UTIL", "MEMORY", "TEMP", "JOBS"],
            [
                [
                    str(g.index),
                    g.name,
                    "?" if g.utilization is None else f"{g.utilization}%",
                    f"{_mib(g.memory_used_mib)} / {_mib(g.memory_total_mib)}",
                    "?" if g.temperature_c is None else f"{g.temperature_c}C",
                    ",".join(g.jobs) or "-",
                ]
                for g in report.gpus
            ],
        )
    render.print_line()
    if not report.jobs:
        render.print_line(f"No running jobs on {report.executor}.")
        return
    render.print_table(
        ["JOB", "CPU", "MEMORY", "MEM %", "PIDS"],
        [
            [
                j.job_id,
                "?" if j.cpu_percent is None else f"{j.cpu_percent:.1f}%",
                f"{j.memory_used} / {j.memory_limit}",
                "?" if j.memory_percent is None else f"{j.memory_percent:.1f}%",
                "?" if j.pids is None else str(j.pids),
            ]
            for j in report.jobs
        ],
    )


def _mib(value: int | None) -> str:
    return "?" if value is None else f"{value} MiB"
