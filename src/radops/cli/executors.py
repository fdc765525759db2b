"""`radops executors ...`: register executors, run jobs on them, read their logs.

Each command parses its arguments, makes one call into the core, and renders the result.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from radops.cli import gcp as gcp_cli
from radops.cli.render import examples

if TYPE_CHECKING:
    from collections.abc import Callable

    from radops.config import AnyExecutorSpec
    from radops.executors.base import Executor

app = typer.Typer(
    help="Register executors (machines that run Docker) and run jobs on them.",
    no_args_is_help=True,
)
app.add_typer(gcp_cli.app, name="gcp")

EXECUTOR_ARG = typer.Argument(..., help="Executor name (see `radops executors list`).")
JOB_ARG = typer.Argument(..., help="Job id printed by `run` (a unique prefix is enough).")
JSON_OPT = typer.Option(False, "--json", help="Print JSON for scripts.")


def _open(name: str) -> Executor:
    from radops.executors import open_executor
    from radops.store import ExecutorStore

    executor = open_executor(ExecutorStore().get(name))
    executor.confirm_host_key = _confirm_host_key()
    return executor


def _confirm_host_key() -> Callable[[str, str, str], bool] | None:
    """Ask on the terminal whether to trust an unknown SSH host key; None without a terminal."""
    if not sys.stdin.isatty():
        return None

    def confirm(host: str, key_type: str, fingerprint: str) -> bool:
        typer.echo(f"The authenticity of host {host!r} can't be established.", err=True)
        typer.echo(f"{key_type} key fingerprint is {fingerprint}.", err=True)
        return typer.confirm("Trust this key and continue connecting?", default=False, err=True)

    return confirm


def _spec_fields(spec: AnyExecutorSpec) -> list[tuple[str, str]]:
    data = spec.model_dump(mode="json", exclude_none=True)
    return [(key, str(value)) for key, value in data.items()]


def _spec_target(spec: AnyExecutorSpec) -> str:
    host = getattr(spec, "hostname", None)
    if host is None:
        return os.environ.get("DOCKER_HOST", "this machine's Docker engine")
    user = getattr(spec, "username", None)
    port = getattr(spec, "port", None)
    return f"{user + '@' if user else ''}{host}{':' + str(port) if port else ''}"


@app.command(
    "list",
    epilog=examples("radops executors list", "radops executors list --json | jq -r '.[].name'"),
)
def list_(json_output: bool = JSON_OPT) -> None:
    """List the built-in `local` executor and every registered executor."""
    from radops.cli import render
    from radops.store import ExecutorStore

    specs = ExecutorStore().list()
    if json_output:
        render.print_json([s.model_dump(mode="json", exclude_none=True) for s in specs])
        return
    rows = [(s.name, s.kind, _spec_target(s), getattr(s, "docker_path", "docker")) for s in specs]
    render.print_table(("NAME", "KIND", "TARGET", "DOCKER"), rows)


@app.command(
    "show", epilog=examples("radops executors show gpu1", "radops executors show gpu1 --json")
)
def show(name: str = EXECUTOR_ARG, json_output: bool = JSON_OPT) -> None:
    """Show one executor's settings."""
    from radops.cli import render
    from radops.store import ExecutorStore

    spec = ExecutorStore().get(name)
    if json_output:
        render.print_json(spec.model_dump(mode="json", exclude_none=True))
    else:
        render.print_fields(_spec_fields(spec))


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
    from radops.cli import render
    from radops.config import GCPExecutorSpec
    from radops.store import ExecutorStore

    store = ExecutorStore()
    spec = store.get(name)
    is_gcp = isinstance(spec, GCPExecutorSpec)
    if is_gcp:
        if delete_vm is None and sys.stdin.isatty():
            delete_vm = typer.confirm(
                f"Also delete VM {name}? It costs money while it exists", err=True
            )
        if delete_vm:
            from radops.cli.gcp import delete as delete_gcp_vm

            delete_gcp_vm(name, yes=True, project=getattr(spec, "project", None))
            return
    store.remove(name)
    render.print_line(f"Removed executor {name}.", err=True)
    if is_gcp:
        render.print_line(
            f"Its VM still exists; delete it with: radops executors gcp delete {name}", err=True
        )


def _ask(value: str | None, prompt: str, flag: str, default: str | None = None) -> str:
    """The flag's value, else the answer to a prompt.

    On a terminal the prompt is shown; answers piped in by a script are read a line each with
    no prompt mixed into the output. An empty answer, or none, takes the default if there is one.
    """
    from radops.errors import UsageError

    if value is not None:
        return value
    if sys.stdin.isatty():
        answer: str = typer.prompt(prompt, default=default, err=True)
        return answer.strip()
    line = sys.stdin.readline().strip()
    if line or default is not None:
        return line or str(default)
    raise UsageError(f"no answer for {prompt!r} (stdin closed)", f"Give it with {flag}.")


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
    json_output: bool = JSON_OPT,
) -> None:
    """Register a machine reachable over SSH as an executor.

    Prompts for the name, hostname, username and docker path unless flags give them.
    Public-key SSH authentication must already work for that user.
    """
    from radops.cli import render
    from radops.config import DEFAULT_DOCKER_PATH, SSHExecutorSpec, split_host_port
    from radops.config import validate_executor_name as valid_name
    from radops.errors import UsageError
    from radops.store import ExecutorStore

    name = valid_name(_ask(name, "Executor name", "--name"))
    store = ExecutorStore()
    if name == "local":
        raise UsageError("'local' is built in: it cannot be added, replaced or removed")
    if name in store.load().executors:
        raise UsageError(
            f"executor {name!r} already exists",
            f"Remove it first with `radops executors remove {name}`, or choose another name.",
        )
    host, port = split_host_port(_ask(hostname, "Hostname", "--hostname"), port)
    from radops.ssh import resolve_target

    user = _ask(username, "Username", "--username", resolve_target(host, port).username)
    path = _ask(
        docker_path, "Path to docker on the remote machine", "--docker-path", DEFAULT_DOCKER_PATH
    )
    from pydantic import ValidationError

    if identity_file is not None and not no_check and not identity_file.expanduser().is_file():
        raise UsageError(f"no key file at {str(identity_file)!r} (--identity-file)")
    try:
        spec = SSHExecutorSpec(
            name=name,
            hostname=host,
            port=port,
            username=user or None,
            docker_path=path,
            identity_file=str(identity_file.expanduser()) if identity_file else None,
            registry=registry,
        )
    except ValidationError as e:
        raise UsageError(str(e.errors()[0]["msg"]).removeprefix("Value error, ")) from None
    if not no_check:
        from radops.executors import check_executor

        report = check_executor(spec, accept_host_key, _confirm_host_key())
        render.print_line(report.summary(), err=True)
        spec.platform = report.platform
    store.add(spec)
    if json_output:
        render.print_json(spec.model_dump(mode="json", exclude_none=True))
    else:
        render.print_line(f"Added executor {name} ({_spec_target(spec)}).", err=True)
        render.print_line(f"Run a job: radops executors run {name} PATH COMMAND", err=True)


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
    from radops.cli import render
    from radops.executors import check_executor
    from radops.store import ExecutorStore

    store = ExecutorStore()
    spec = store.get(name)
    report = check_executor(spec, accept_host_key, _confirm_host_key())
    if getattr(spec, "platform", report.platform) != report.platform:
        store.update_platform(name, report.platform)
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
    """Open an interactive SSH session on an executor's machine."""
    from radops.cli import render
    from radops.errors import UsageError
    from radops.ssh import resolve_target
    from radops.store import ExecutorStore, config_dir

    spec = ExecutorStore().get(name)
    hostname = getattr(spec, "hostname", None)
    if hostname is None:
        raise UsageError(f"executor {name!r} is this machine; there is nothing to connect to")
    target = resolve_target(hostname, spec.port, spec.username, spec.identity_file)  # type: ignore[union-attr]
    argv = target.ssh_argv(config_dir() / "known_hosts")
    if print_only:
        render.print_line(shlex.join(argv))
        return
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        raise UsageError(f"cannot start ssh: {e.strerror}", "Install OpenSSH's client.") from e


def _split_command(command: list[str]) -> list[str]:
    from radops.errors import UsageError

    if len(command) != 1:
        return command
    try:
        return shlex.split(command[0])
    except ValueError as e:
        raise UsageError(f"cannot split COMMAND {command[0]!r}: {e}") from None


@app.command(
    "run",
    epilog=examples(
        'radops executors run local demos/remote_execution "testing remote execution"',
        'JOB=$(radops executors run gpu1 ./train "python train.py --lr 3e-4" --gpus all -q)',
        "radops executors run local ./app --follow -- python -c 'print(1)'",
    ),
)
def run(
    executor: str = EXECUTOR_ARG,
    path: Path = typer.Argument(..., help="Folder with a Dockerfile: the build context."),
    command: list[str] | None = typer.Argument(
        None,
        help=(
            "What the container gets as arguments, like `docker run IMAGE ARGS...`. One string is "
            "split like a shell would (no shell runs it); after `--`, several are passed as-is."
        ),
    ),
    file: str | None = typer.Option(
        None, "--file", help="Dockerfile to use, relative to PATH \\[default: PATH/Dockerfile]."
    ),
    env: list[str] | None = typer.Option(
        None, "-e", "--env", help="KEY=VALUE (or KEY to pass this shell's value). Repeatable."
    ),
    gpus: str | None = typer.Option(
        None, "--gpus", help="GPUs, as `docker run --gpus`: all, 2, device=0."
    ),
    name: str | None = typer.Option(None, "--name", help="A human label for the job."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Stream the logs, then exit with the job's exit code."
    ),
    transfer: str = typer.Option(
        "auto",
        "--transfer",
        help="How an SSH executor gets the image: registry, ssh (docker save | load over the "
        "SSH connection) or auto (registry if one is configured, else ssh).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the job id."),
    json_output: bool = JSON_OPT,
) -> None:
    """Build PATH's image (skipped when unchanged), ship it, start it as a job, print the job id.

    On an SSH executor the image is built here, pushed to the registry and pulled there
    (or streamed over SSH); work whose result already exists is skipped.
    """
    from radops.cli import render
    from radops.errors import UsageError
    from radops.executors._docker_options import parse_env
    from radops.executors.base import JobRequest

    if follow and json_output:
        raise UsageError("--follow and --json cannot be combined")
    if transfer not in ("auto", "registry", "ssh"):
        raise UsageError(f"invalid --transfer {transfer!r}: use auto, registry or ssh")
    request = JobRequest(
        context=path,
        command=_split_command(command or []),
        dockerfile=file or "Dockerfile",
        env=parse_env(env or [], dict(os.environ)),
        gpus=gpus,
        name=name,
    )
    with _open(executor) as ex:
        if hasattr(ex, "transfer"):
            ex.transfer = transfer
        ex.connect()  # before the live status line, which would hide a host-key question
        with render.progress_reporter(quiet) as progress:
            job = ex.run(request, progress)
        if json_output:
            render.print_json(job.to_json())
        elif quiet:
            render.print_line(job.id)
        else:
            render.print_line(f"Job {job.id} started on {ex.name} (image {job.image})", err=follow)
            if not follow:
                render.print_line(f"Logs: radops executors logs {ex.name} {job.id}")
        if follow:
            _follow(ex, job.id)


def _follow(ex: Executor, job_id: str) -> None:
    """Stream a job's logs until it ends, then exit with its exit code."""
    from radops.cli import render

    try:
        render.write_output(ex.logs(job_id, follow=True))
        code = ex.wait(job_id)
    except KeyboardInterrupt:
        render.print_line(
            f"\nStopped following; job {job_id} keeps running "
            f"(stop it with: radops executors stop {ex.name} {job_id}).",
            err=True,
        )
        raise typer.Exit(130) from None
    raise typer.Exit(code)


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
    """Print a job's output, byte for byte (stdout to stdout, stderr to stderr)."""
    from radops.cli import render

    with _open(executor) as ex:
        if follow:
            try:
                render.write_output(ex.logs(job_id, follow=True, tail=tail, timestamps=timestamps))
            except KeyboardInterrupt:
                raise typer.Exit(130) from None
        else:
            render.write_output(ex.logs(job_id, tail=tail, timestamps=timestamps))


@app.command(
    "jobs", epilog=examples("radops executors jobs local", "radops executors jobs gpu1 --json")
)
def jobs(executor: str = EXECUTOR_ARG, json_output: bool = JSON_OPT) -> None:
    """List the radops jobs on an executor, newest first."""
    from radops.cli import render

    with _open(executor) as ex:
        found = ex.jobs()
    if json_output:
        render.print_json([job.to_json() for job in found])
    elif found:
        render.jobs_table(found)
    else:
        render.print_line(f"No jobs on {executor}.", err=True)


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

    with _open(executor) as ex:
        before = ex.get(job_id)
        job = ex.stop(before.id, timeout=timeout) if before.status == "running" else before
    if json_output:
        render.print_json(job.to_json())
    elif before.status != "running":
        render.print_line(f"Job {job.id} was not running ({job.status}).", err=True)
    else:
        render.print_line(f"Stopped job {job.id} (exit code {job.exit_code}).", err=True)
