"""Arguments and options that several commands share, so they read the same everywhere."""

from __future__ import annotations

import typer

EXECUTOR_ARG = typer.Argument(..., help="Executor name (see `radops executors list`).")
JOB_ARG = typer.Argument(..., help="Job id printed by `run` (a unique prefix is enough).")
JSON_OPT = typer.Option(False, "--json", help="Print JSON for scripts.")
