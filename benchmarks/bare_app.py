"""The start-up baseline: a Typer app with radops' command tree and help texts, and no logic.

It has the same root app (with `--version`), the same `executors` and `config` sub-apps, the same
command names, arguments, options, docstrings and example epilogs as `radops`, so its `--help`
renders the same amount of text. It imports nothing from radops: what it costs is what Typer and
rich cost. `bench_startup.check_shape()` compares the two trees, so a drift is reported.

Run it like radops: `python -m bare_app executors --help` (with benchmarks/ on PYTHONPATH).
"""

from __future__ import annotations

from pathlib import Path

import typer


def examples(*lines: str) -> str:
    body = "\n\n".join(line.replace("[", "\\[") for line in lines)
    return f"[b]Examples[/b]\n\n{body}"


app = typer.Typer(
    name="radops",
    help="Run a folder's Docker image as a job on the local engine, an SSH host or a GCP VM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
executors = typer.Typer(
    help="Register executors (machines that run Docker) and run jobs on them.",
    no_args_is_help=True,
)
config = typer.Typer(
    help="Show and change radops settings (registry, GCP project, zone, endpoint, SSH).",
    no_args_is_help=True,
)
gcp = typer.Typer(
    help="Create GPU VMs on Google Cloud from instance templates and use them as executors.",
    no_args_is_help=True,
)
app.add_typer(executors, name="executors")
app.add_typer(config, name="config")
executors.add_typer(gcp, name="gcp")

EXECUTOR_ARG = typer.Argument(..., help="Executor name (see `radops executors list`).")
JOB_ARG = typer.Argument(..., help="Job id printed by `run` (a unique prefix is enough).")
JSON_OPT = typer.Option(False, "--json", help="Print JSON for scripts.")
ACCEPT_OPT = typer.Option(
    False, "--accept-host-key", help="Trust the machine's SSH host key without asking."
)
KEY_HELP = "Setting name: registry, gcp_project, gcp_zone, gcp_api_endpoint or ssh_persist."


def _version(value: bool) -> None:
    if value:
        typer.echo("bare 0")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run a folder's Docker image as a job on the local engine, an SSH host or a GCP VM.

    Start with `radops executors --help`.
    """


@executors.command(
    "list",
    epilog=examples("radops executors list", "radops executors list --json | jq -r '.[].name'"),
)
def list_(json_output: bool = JSON_OPT) -> None:
    """List the built-in `local` executor and every registered executor."""


@executors.command(
    "show", epilog=examples("radops executors show gpu1", "radops executors show gpu1 --json")
)
def show(name: str = EXECUTOR_ARG, json_output: bool = JSON_OPT) -> None:
    """Show one executor's settings."""


@executors.command("remove", epilog=examples("radops executors remove gpu1"))
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


@executors.command(
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
    accept_host_key: bool = ACCEPT_OPT,
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


@executors.command(
    "check", epilog=examples("radops executors check gpu1", "radops executors check local")
)
def check(
    name: str = EXECUTOR_ARG, accept_host_key: bool = ACCEPT_OPT, json_output: bool = JSON_OPT
) -> None:
    """Connect to an executor and report its Docker version, architecture and GPUs."""


@executors.command(
    "connect",
    epilog=examples("radops executors connect gpu1", "radops executors connect gpu1 --print"),
)
def connect(
    name: str = EXECUTOR_ARG,
    print_only: bool = typer.Option(False, "--print", help="Print the ssh command instead."),
) -> None:
    """Open an interactive SSH session on an executor's machine."""


@executors.command(
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


@executors.command(
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


@executors.command(
    "jobs", epilog=examples("radops executors jobs local", "radops executors jobs gpu1 --json")
)
def jobs(executor: str = EXECUTOR_ARG, json_output: bool = JSON_OPT) -> None:
    """List the radops jobs on an executor, newest first."""


@executors.command("stop", epilog=examples("radops executors stop gpu1 3f2a9c1b7d4e"))
def stop(
    executor: str = EXECUTOR_ARG,
    job_id: str = JOB_ARG,
    timeout: int = typer.Option(
        10, "--timeout", min=0, help="Seconds between SIGTERM and SIGKILL."
    ),
    json_output: bool = JSON_OPT,
) -> None:
    """Stop a running job (SIGTERM, then SIGKILL). Its logs and exit code stay."""


@config.command("show", epilog=examples("radops config show", "radops config show --json"))
def config_show(
    json_output: bool = typer.Option(False, "--json", help="Print a JSON object."),
) -> None:
    """Show every setting, its value and where the value comes from."""


@config.command("set", epilog=examples("radops config set registry ghcr.io/my-org"))
def config_set(
    key: str = typer.Argument(..., help=KEY_HELP),
    value: str = typer.Argument(..., help="The new value."),
) -> None:
    """Set a setting in the config file (its environment variable still wins)."""


@config.command("unset", epilog=examples("radops config unset registry"))
def config_unset(key: str = typer.Argument(..., help=KEY_HELP)) -> None:
    """Remove a setting from the config file."""


PROJECT_OPT = typer.Option(
    None,
    "--project",
    help="GCP project \\[else RADOPS_GCP_PROJECT, `config set gcp_project`, gcloud].",
)
ZONE_OPT = typer.Option(
    None,
    "--zone",
    help="Zone, e.g. us-central1-a \\[else RADOPS_GCP_ZONE, `config set gcp_zone`, gcloud].",
)
NAME_ARG = typer.Argument(..., help="The GCP executor (and VM) name.")


@gcp.command(
    "list-templates",
    epilog=examples(
        "radops executors gcp list-templates", "radops executors gcp list-templates --json"
    ),
)
def gcp_list_templates(project: str | None = PROJECT_OPT, json_output: bool = JSON_OPT) -> None:
    """List the project's instance templates (global and regional): the VM types you can create."""


@gcp.command(
    "create",
    epilog=examples(
        "radops executors gcp create a100-template gpu-a100",
        "radops executors gcp create a100-template gpu-a100 --zones us-central1-a,us-central1-c",
        "radops executors gcp create a100-template --any-zone --zone us-central1-a",
    ),
)
def gcp_create(
    template: str = typer.Argument(..., help="Instance template name (see list-templates)."),
    name: str | None = typer.Argument(
        None, help="Executor and VM name \\[default: radops-<6 hex>]."
    ),
    project: str | None = PROJECT_OPT,
    zone: str | None = ZONE_OPT,
    zones: str | None = typer.Option(
        None, "--zones", help="Zones to try in order when one is out of capacity: a,b,c."
    ),
    any_zone: bool = typer.Option(
        False, "--any-zone", help="Also try the other zones of the template's region."
    ),
    username: str | None = typer.Option(
        None, "--username", help="User to log in as \\[default: your local user name]."
    ),
    timeout: float = typer.Option(
        600, "--timeout", min=1, help="Seconds to wait for boot, SSH and docker."
    ),
    keep_on_failure: bool = typer.Option(
        False, "--keep-on-failure", help="Keep the VM if it never becomes ready (to debug it)."
    ),
    json_output: bool = JSON_OPT,
) -> None:
    """Create a VM from an instance template and register it as an executor.

    Waits for it to boot, adds your SSH key, checks docker (and GPUs when the template has
    them), then saves executor NAME. If anything fails, or you press Ctrl-C, the VM is deleted.
    """


@gcp.command("delete", epilog=examples("radops executors gcp delete gpu-a100 --yes"))
def gcp_delete(
    name: str = NAME_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    project: str | None = PROJECT_OPT,
) -> None:
    """Delete the VM and its executor (a VM that is already gone is not an error)."""


@gcp.command("stop", epilog=examples("radops executors gcp stop gpu-a100"))
def gcp_stop(name: str = NAME_ARG, project: str | None = PROJECT_OPT) -> None:
    """Stop the VM (no compute charges; disks are still billed). Jobs on it end."""


@gcp.command("start", epilog=examples("radops executors gcp start gpu-a100"))
def gcp_start(name: str = NAME_ARG, project: str | None = PROJECT_OPT) -> None:
    """Start a stopped VM and update the executor's address (the external IP changes)."""


@gcp.command(
    "list", epilog=examples("radops executors gcp list", "radops executors gcp list --json")
)
def gcp_list(project: str | None = PROJECT_OPT, json_output: bool = JSON_OPT) -> None:
    """List radops' VMs with their status; flag VMs without executors and executors without VMs."""


if __name__ == "__main__":
    app(prog_name="radops")
