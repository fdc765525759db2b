"""`radops executors ...`: register executors (list, show, add, remove, check, connect).

The job commands are in radops.cli.run, .jobs, .files, .ports and .cleanup, the GCP ones in
radops.cli.gcp; both are parts of this command group. Each command parses its arguments,
makes one call into the core, and renders the result.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from radops.cli import cleanup as cleanup_cli
from radops.cli import files as files_cli
from radops.cli import gcp as gcp_cli
from radops.cli import jobs as jobs_cli
from radops.cli import ports as ports_cli
from radops.cli import run as run_cli
from radops.cli.options import EXECUTOR_ARG, JSON_OPT, check_build_place
from radops.cli.prompts import ask, connect_options
from radops.cli.render import examples

if TYPE_CHECKING:
    from radops.specs import AnyExecutorSpec

app = typer.Typer(
    help="Register executors (machines that run Docker) and run jobs on them.",
    no_args_is_help=True,
)


def _spec_fields(spec: AnyExecutorSpec) -> list[tuple[str, str]]:
    return [(key, str(value)) for key, value in spec.to_json().items()]


@app.command(
    "list",
    epilog=examples("radops executors list", "radops executors list --json | jq -r '.[].name'"),
)
def list_(json_output: bool = JSON_OPT) -> None:
    """List the built-in `local` executor and every registered executor."""
    from radops.api import list_executors
    from radops.cli import render

    specs = list_executors()
    if json_output:
        render.print_json([s.to_json() for s in specs])
        return
    rows = [(s.name, s.kind, s.target_text(), s.docker_text()) for s in specs]
    render.print_table(("NAME", "KIND", "TARGET", "DOCKER"), rows)


@app.command(
    "show", epilog=examples("radops executors show gpu1", "radops executors show gpu1 --json")
)
def show(name: str = EXECUTOR_ARG, json_output: bool = JSON_OPT) -> None:
    """Show one executor's settings."""
    from radops.api import executor_spec
    from radops.cli import render

    spec = executor_spec(name)
    if json_output:
        render.print_json(spec.to_json())
    else:
        render.print_fields(_spec_fields(spec))


@app.command(
    "set",
    epilog=examples(
        "radops executors set gpu1 --docker-path /usr/local/bin/docker",
        "radops executors set gpu1 --registry ghcr.io/my-org",
        "radops executors set gpu1 --registry ''",
        "radops executors set gpu1 --build remote",
    ),
)
def set_(
    name: str = EXECUTOR_ARG,
    docker_path: str | None = typer.Option(
        None, "--docker-path", help="Path to docker on the machine (`which docker` there)."
    ),
    registry: str | None = typer.Option(
        None, "--registry", help="This executor's own registry; '' to use the setting again."
    ),
    identity_file: str | None = typer.Option(
        None, "--identity-file", help="SSH private key; '' to use ~/.ssh/config's again."
    ),
    username: str | None = typer.Option(None, "--username", help="SSH user on the machine."),
    build: str | None = typer.Option(
        None,
        "--build",
        help="Where `run` builds by default: local (here, then ship the image) or remote (on "
        "the machine's engine).",
    ),
    partition: str | None = typer.Option(
        None,
        "--partition",
        help="Slurm: the jobs' default partition; '' for Slurm's default.",
        rich_help_panel="Slurm",
    ),
    account: str | None = typer.Option(
        None, "--account", help="Slurm: the jobs' account; '' for none.", rich_help_panel="Slurm"
    ),
    runtime: str | None = typer.Option(
        None, "--runtime", help="Slurm: docker, podman or pyxis.", rich_help_panel="Slurm"
    ),
    job_dir: str | None = typer.Option(
        None, "--job-dir", help="Slurm: the shared job folder.", rich_help_panel="Slurm"
    ),
    json_output: bool = JSON_OPT,
) -> None:
    """Change a registered executor's settings, keeping the rest (and its jobs).

    Nothing is checked on the machine: `radops executors check NAME` does that.
    """
    from radops.api import update_executor
    from radops.cli import render

    changes: dict[str, str | None] = {
        "docker_path": docker_path, "registry": registry, "identity_file": identity_file,
        "username": username, "build": None if build is None else check_build_place(build),
        "partition": partition, "account": account, "runtime": runtime, "job_dir": job_dir,
    }  # fmt: skip
    spec = update_executor(name, changes)
    changes = {key: value for key, value in changes.items() if value is not None}
    if json_output:
        render.print_json(spec.to_json())
    else:
        what = ", ".join(f"{field} {changes[field] or '(cleared)'}" for field in changes)
        render.print_line(f"Changed executor {name}: {what}.", err=True)


@app.command("remove", epilog=examples("radops executors remove gpu1"))
def remove(
    name: str = EXECUTOR_ARG,
    delete_vm: bool | None = typer.Option(
        None,
        "--delete-vm/--keep-vm",
        help="For a GCP executor: also delete its VM \\[default: ask on a terminal, else keep].",
    ),
) -> None:
    """Unregister an executor. Its jobs keep running on the machine; nothing there is deleted.

    For a GCP executor, radops asks whether to delete the VM too.
    """
    from radops.api import owns_vm, remove_executor
    from radops.cli import render

    owned = owns_vm(name)
    if owned and delete_vm is None and sys.stdin.isatty():
        delete_vm = typer.confirm(
            f"Also delete VM {name}? It costs money while it exists", err=True
        )
    with render.progress_reporter(False) as progress:
        removal = remove_executor(name, delete_vm=bool(owned and delete_vm), progress=progress)
    if removal.vm_deleted is not None:
        gone = "" if removal.vm_deleted else " (the VM was already gone)"
        render.print_line(f"Deleted {name}{gone}.")
        return
    render.print_line(f"Removed executor {name}.", err=True)
    if removal.left_behind:
        render.print_line(removal.left_behind, err=True)


@app.command(
    "add",
    epilog=examples(
        "radops executors add    # answer the prompts",
        "radops executors add --name gpu1 --hostname gpu1.lab:2222 --username ana",
        "radops executors add --name lab --hostname lab-alias  # a Host alias from ~/.ssh/config",
    ),
)
def add(
    name: str | None = typer.Option(
        None, "--name", help="Executor name: letters, digits, - and _."
    ),
    hostname: str | None = typer.Option(
        None, "--hostname", help="Host name, IP, `host:port` or an alias from ~/.ssh/config."
    ),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="SSH port."),
    username: str | None = typer.Option(None, "--username", help="SSH user on the machine."),
    docker_path: str | None = typer.Option(
        None, "--docker-path", help="Path to docker on the machine \\[default: /usr/bin/docker]."
    ),
    identity_file: Path | None = typer.Option(
        None,
        "--identity-file",
        help="Private key to log in with (else ssh config, agent, defaults).",
    ),
    accept_host_key: bool = typer.Option(
        False, "--accept-host-key", help="Trust the machine's SSH host key without asking."
    ),
    no_check: bool = typer.Option(
        False, "--no-check", help="Save without connecting to check SSH and docker."
    ),
    registry: str | None = typer.Option(
        None,
        "--registry",
        help="Registry for this executor's images (else RADOPS_REGISTRY or `config set registry`).",
    ),
    build: str | None = typer.Option(
        None,
        "--build",
        help="Where `run` builds by default: local (here, then ship the image) or remote (on "
        "the machine's engine: only the build context travels).",
    ),
    kind: str = typer.Option(
        "ssh", "--kind", help="ssh (a machine with Docker) or slurm (a Slurm cluster's login node)."
    ),
    job_dir: str | None = typer.Option(
        None,
        "--job-dir",
        help="Slurm: a folder the login and compute nodes share, for each job's output.",
        rich_help_panel="Slurm",
    ),
    partition: str | None = typer.Option(
        None, "--partition", help="Slurm: the jobs' default partition.", rich_help_panel="Slurm"
    ),
    account: str | None = typer.Option(
        None,
        "--account",
        help="Slurm: the jobs' account (sbatch --account).",
        rich_help_panel="Slurm",
    ),
    runtime: str | None = typer.Option(
        None,
        "--runtime",
        help="Slurm: how nodes run containers: docker, podman or pyxis \\[default: found by "
        "the check].",
        rich_help_panel="Slurm",
    ),
    json_output: bool = JSON_OPT,
) -> None:
    """Register a machine reachable over SSH as an executor, or a Slurm cluster (--kind slurm).

    Prompts for the name, hostname, username and docker path unless flags give them.
    Public-key SSH authentication must already work for that user. A Slurm executor is its
    login node: `add` checks sinfo, the partitions, GPUs (GRES) and the container runtime.
    """
    from radops.api import add_executor
    from radops.cli import render
    from radops.errors import UsageError

    if identity_file is not None and not no_check and not identity_file.expanduser().is_file():
        raise UsageError(f"no key file at {str(identity_file)!r} (--identity-file)")
    fields = {
        "name": name, "hostname": hostname, "port": port, "username": username,
        "docker_path": docker_path, "registry": registry,
        "identity_file": str(identity_file.expanduser()) if identity_file else None,
        "build": None if build in (None, "local") else check_build_place(build),
        "job_dir": job_dir, "partition": partition, "account": account, "runtime": runtime,
    }  # fmt: skip
    spec, report = add_executor(
        kind, fields, ask, check=not no_check, connect=connect_options(accept_host_key)
    )
    if report is not None:
        render.print_line(report.summary(), err=True)
    if json_output:
        render.print_json(spec.to_json())
    else:
        render.print_line(f"Added executor {spec.name} ({spec.target_text()}).", err=True)
        render.print_line(f"Run a job: radops executors run {spec.name} PATH COMMAND", err=True)


@app.command(
    "check", epilog=examples("radops executors check gpu1", "radops executors check local")
)
def check(
    name: str = EXECUTOR_ARG,
    accept_host_key: bool = typer.Option(
        False, "--accept-host-key", help="Trust the machine's SSH host key without asking."
    ),
    json_output: bool = JSON_OPT,
) -> None:
    """Connect to an executor and report its Docker version, architecture and GPUs."""
    from radops.api import check_executor
    from radops.cli import render

    report = check_executor(name, connect_options(accept_host_key))
    if json_output:
        render.print_json(report.to_json())
    else:
        render.print_line(report.summary())


@app.command(
    "connect",
    epilog=examples("radops executors connect gpu1", "radops executors connect gpu1 --print"),
)
def connect(
    name: str = EXECUTOR_ARG,
    print_only: bool = typer.Option(False, "--print", help="Print the ssh command instead."),
) -> None:
    """Open an interactive SSH session on an executor's machine.

    For a GCP executor, radops first checks the machine's key against the one pinned at
    `gcp create`, and OpenSSH then trusts only that key: it gets a known-hosts file holding
    it alone, removed when the session ends (with --print, kept in radops' config folder,
    pinned_hosts/NAME, for the printed command).
    """
    from radops.api import connect_shell, shell_command
    from radops.cli import render

    if print_only:
        render.print_line(shlex.join(shell_command(name, connect_options())))
        return
    raise typer.Exit(connect_shell(name, connect_options()))


app.add_typer(run_cli.app)  # run: a command of this group
app.add_typer(jobs_cli.app)  # logs, jobs, inspect, stop
app.add_typer(files_cli.app)  # cp, exec
app.add_typer(ports_cli.app)  # forward, top
app.add_typer(cleanup_cli.app)  # rm, prune
app.add_typer(gcp_cli.app, name="gcp")
