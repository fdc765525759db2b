"""`radops executors gcp ...`: GPU VMs on Google Cloud, created from instance templates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from radops.cli.render import examples

if TYPE_CHECKING:
    from radops.gcp.compute import Template
    from radops.gcp.overview import VMRow

app = typer.Typer(
    help="Create GPU VMs on Google Cloud from instance templates and use them as executors.",
    no_args_is_help=True,
)

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
JSON_OPT = typer.Option(False, "--json", help="Print JSON for scripts.")
AUTOSTOP_DELETE_OPT = typer.Option(
    False,
    "--autostop-delete",
    help="When idle that long, delete the VM (disk included) instead of stopping it.",
)
NAME_ARG = typer.Argument(..., help="The GCP executor (and VM) name.")


@app.command(
    "list-templates",
    epilog=examples(
        "radops executors gcp list-templates", "radops executors gcp list-templates --json"
    ),
)
def list_templates(project: str | None = PROJECT_OPT, json_output: bool = JSON_OPT) -> None:
    """List the project's instance templates (global and regional): the VM types you can create."""
    from radops.api import gcp
    from radops.cli import render

    templates = gcp.templates(project)
    if json_output:
        render.print_json([_template_json(t) for t in templates])
        return
    rows = [
        (t.name, t.machine_type, t.gpu_text(), t.image.rsplit("/", 1)[-1], t.region or "global")
        for t in templates
    ]
    render.print_table(("NAME", "MACHINE TYPE", "GPUS", "BOOT IMAGE", "REGION"), rows)


@app.command(
    "create",
    epilog=examples(
        "radops executors gcp create a100-template gpu-a100",
        "radops executors gcp create a100-template gpu-a100 --zones us-central1-a,us-central1-c",
        "radops executors gcp create a100-template --any-zone --zone us-central1-a",
        "radops executors gcp create a100-template gpu-a100 --autostop 30m",
        "radops executors gcp create a100-template cheap --spot --autostop 1h --autostop-delete",
    ),
)
def create(
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
    autostop: str | None = typer.Option(
        None,
        "--autostop",
        help="Stop the VM after this long without a radops job or command (30m, 2h; a bare "
        "number is minutes; off) \\[default: `config set gcp_autostop`, else off].",
    ),
    autostop_delete: bool = AUTOSTOP_DELETE_OPT,
    spot: bool = typer.Option(
        False,
        "--spot",
        help="A spot VM: much cheaper, but Google may stop it at any time (`gcp start` "
        "resumes it).",
    ),
    json_output: bool = JSON_OPT,
) -> None:
    """Create a VM from an instance template and register it as an executor.

    Waits for it to boot, adds your SSH key, checks docker (and GPUs when the template has
    them), arms autostop if asked, then saves executor NAME. If anything fails, or you press
    Ctrl-C, the VM is deleted.
    """
    from radops.api import gcp
    from radops.cli import render

    with render.progress_reporter(False) as progress:
        spec, idle = gcp.create(
            template, name, project=project, zone=zone,
            zones=[z.strip() for z in zones.split(",")] if zones else (), any_zone=any_zone,
            username=username, timeout=timeout, keep_on_failure=keep_on_failure,
            autostop=autostop, autostop_delete=autostop_delete, spot=spot, progress=progress,
        )  # fmt: skip
    if json_output:
        render.print_json(spec.to_json())
        return
    render.print_line(f"Executor {spec.name} is ready ({spec.target_text()}, {spec.zone}).")
    render.print_line(f"Run a job: radops executors run {spec.name} PATH COMMAND")
    if idle is None:
        render.print_line(f"It costs money while it runs: radops executors gcp stop {spec.name}")
    else:
        what = "deleted" if idle.action == "delete" else "stopped"
        render.print_line(
            f"Autostop: it is {what} after {idle.text().split()[0]} without a radops job or "
            f"command (change it: radops executors gcp autostop {spec.name} 2h|off)"
        )


def _confirm_delete(name: str, yes: bool) -> None:
    from radops.cli.prompts import confirm

    confirm(
        f"Delete VM {name} and its executor?",
        f"refusing to delete VM {name} without confirmation",
        yes,
    )


@app.command("delete", epilog=examples("radops executors gcp delete gpu-a100 --yes"))
def delete(
    name: str = NAME_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    project: str | None = PROJECT_OPT,
) -> None:
    """Delete the VM and its executor (a VM that is already gone is not an error)."""
    from radops.api import gcp
    from radops.cli import render

    _confirm_delete(name, yes)
    with render.progress_reporter(False) as progress:
        deleted = gcp.delete(name, project, progress)
    render.print_line(f"Deleted {name}" + ("" if deleted else " (the VM was already gone)") + ".")


@app.command("stop", epilog=examples("radops executors gcp stop gpu-a100"))
def stop(name: str = NAME_ARG, project: str | None = PROJECT_OPT) -> None:
    """Stop the VM (no compute charges; disks are still billed). Jobs on it end."""
    from radops.api import gcp
    from radops.cli import render

    with render.progress_reporter(False) as progress:
        gcp.stop(name, project, progress)
    render.print_line(f"Stopped {name}. Start it again with: radops executors gcp start {name}")


@app.command("start", epilog=examples("radops executors gcp start gpu-a100"))
def start(name: str = NAME_ARG, project: str | None = PROJECT_OPT) -> None:
    """Start a stopped (or preempted) VM and update the executor's address (the external IP
    changes). If the VM has autostop, waits for SSH and re-arms it: the idle clock restarts."""
    from radops.api import gcp
    from radops.cli import render

    with render.progress_reporter(False) as progress:
        ip = gcp.start(name, project, progress)
    render.print_line(f"Started {name} at {ip}.")


@app.command(
    "autostop",
    epilog=examples(
        "radops executors gcp autostop gpu-a100 2h",
        "radops executors gcp autostop gpu-a100 45m --autostop-delete",
        "radops executors gcp autostop gpu-a100 off",
    ),
)
def autostop_(
    name: str = NAME_ARG,
    duration: str = typer.Argument(
        ...,
        help="Idle time before the VM stops: 30m, 2h, 90s, 1d (a bare number is minutes), or off.",
    ),
    autostop_delete: bool = AUTOSTOP_DELETE_OPT,
    project: str | None = PROJECT_OPT,
) -> None:
    """Set (or turn off) how long the VM may stay idle before it stops itself.

    Idle means no radops job running on its engine and no radops command using it (run, logs,
    cp, exec, ...). A small watcher on the VM checks every minute (a tenth of the period, if
    shorter) and then shuts the VM down: it shows TERMINATED, its disk is kept and still billed;
    `gcp start` resumes it. Setting it restarts the idle clock. On a stopped VM the setting is
    saved and armed by the next `gcp start`. `gcp list` shows it and the time idle.
    """
    from radops.api import gcp
    from radops.cli import render

    with render.progress_reporter(False) as progress:
        setting, now = gcp.set_autostop(name, duration, autostop_delete, project, progress)
    if setting is None:
        render.print_line(f"Autostop of {name} is off.")
        return
    what = "deletes itself" if setting.action == "delete" else "stops"
    when = "Armed now; the idle clock restarts." if now else "It is armed by the next `gcp start`."
    render.print_line(
        f"{name} {what} after {setting.text().split()[0]} without a radops job or command. " + when
    )


@app.command(
    "list", epilog=examples("radops executors gcp list", "radops executors gcp list --json")
)
def list_(project: str | None = PROJECT_OPT, json_output: bool = JSON_OPT) -> None:
    """List radops' VMs: status (PREEMPTED for a spot VM Google reclaimed), spot or on-demand,
    autostop and how long each running VM has been idle; flag VMs without executors and
    executors without VMs. Reading idle time costs one SSH command per VM with autostop."""
    from radops.api import gcp
    from radops.cli import render

    rows = gcp.vms(project)
    if json_output:
        render.print_json([row.to_json() for row in rows])
        return
    render.print_table(
        ("NAME", "ZONE", "STATUS", "EXTERNAL IP", "EXECUTOR", "PRICING", "AUTOSTOP", "IDLE"),
        [
            (
                r.name,
                r.zone or "",
                "PREEMPTED" if r.cost.preempted_at else r.status,
                r.external_ip or "",
                r.executor or "-",
                _pricing(r.cost.provisioning_model),
                r.cost.autostop.text if r.cost.autostop else "-",
                _idle_text(r.cost.idle_seconds),
            )
            for r in rows
        ],
    )
    for row in rows:
        _warnings(row)


def _warnings(row: VMRow) -> None:
    """What needs doing about a VM, on stderr."""
    from radops.cli import render

    if row.problem:
        render.print_line(f"warning: {row.name}: {row.problem}", err=True)
    if row.cost.preempted_at:
        render.print_line(
            f"note: {row.name}: preempted at {row.cost.preempted_at}; "
            f"`radops executors gcp start {row.name}` to resume (its jobs run with --restart "
            "unless-stopped or always come back with it)",
            err=True,
        )
    watcher, autostop = row.cost.watcher or "", row.cost.autostop
    if watcher and watcher != "armed" and autostop is not None:
        again = f"radops executors gcp autostop {row.name} {autostop.text}"
        render.print_line(
            f"warning: {row.name}: autostop watcher {watcher}; arm it again: "
            + again.removesuffix(" (delete)")
            + (" --autostop-delete" if autostop.action == "delete" else ""),
            err=True,
        )


def _pricing(model: str | None) -> str:
    return {"SPOT": "spot", "STANDARD": "on-demand"}.get(model or "", model or "")


def _idle_text(seconds: int | None) -> str:
    from radops.gcp.autostop import format_duration

    return "-" if seconds is None else format_duration(int(seconds))


def _template_json(template: Template) -> dict[str, object]:
    """A template for scripts: GPUs as objects (`{"type": ..., "count": ...}`), not pairs."""
    from dataclasses import asdict

    data: dict[str, object] = asdict(template)
    data["gpus"] = [{"type": kind, "count": count} for kind, count in template.gpus]
    return data
