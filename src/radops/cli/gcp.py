"""`radops executors gcp ...`: GPU VMs on Google Cloud, created from instance templates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from radops.cli.render import examples

if TYPE_CHECKING:
    from radops.gcp.compute import Template
    from radops.gcp.provision import Provisioner

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
NAME_ARG = typer.Argument(..., help="The GCP executor (and VM) name.")


def _provisioner(project: str | None, zone: str | None = None) -> Provisioner:
    from radops.gcp.provision import Provisioner
    from radops.gcp.settings import resolve_target
    from radops.store import ExecutorStore

    store = ExecutorStore()
    return Provisioner(resolve_target(store.load().settings, project, zone), store)


@app.command(
    "list-templates",
    epilog=examples(
        "radops executors gcp list-templates", "radops executors gcp list-templates --json"
    ),
)
def list_templates(project: str | None = PROJECT_OPT, json_output: bool = JSON_OPT) -> None:
    """List the project's instance templates (global and regional): the VM types you can create."""
    from radops.cli import render

    templates = _provisioner(project).compute.templates()
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
    json_output: bool = JSON_OPT,
) -> None:
    """Create a VM from an instance template and register it as an executor.

    Waits for it to boot, adds your SSH key, checks docker (and GPUs when the template has
    them), then saves executor NAME. If anything fails, or you press Ctrl-C, the VM is deleted.
    """
    import secrets

    from radops.cli import render
    from radops.gcp.provision import CreateRequest, candidate_zones

    provisioner = _provisioner(project, zone)
    chosen = [z.strip() for z in zones.split(",") if z.strip()] if zones else []
    if not chosen and provisioner.target.zone:
        chosen = [provisioner.target.zone]
    tmpl = provisioner.compute.template(template)
    request = CreateRequest(
        template=template,
        name=name or f"radops-{secrets.token_hex(3)}",
        zones=candidate_zones(provisioner.compute, tmpl, chosen, any_zone),
        username=username,
        timeout=timeout,
        keep_on_failure=keep_on_failure,
    )
    with render.progress_reporter(False) as progress:
        spec = provisioner.create(request, progress)
    if json_output:
        render.print_json(spec.model_dump(mode="json", exclude_none=True))
        return
    render.print_line(
        f"Executor {spec.name} is ready ({spec.username}@{spec.hostname}, {spec.zone})."
    )
    render.print_line(f"Run a job: radops executors run {spec.name} PATH COMMAND")
    render.print_line(f"It costs money while it runs: radops executors gcp stop {spec.name}")


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
    _confirm_delete(name, yes)
    delete_vm(name, project)


def delete_vm(name: str, project: str | None) -> None:
    """Delete VM `name` and its executor, with progress, and say what happened."""
    from radops.cli import render

    with render.progress_reporter(False) as progress:
        deleted = _provisioner(project).delete(name, progress)
    render.print_line(f"Deleted {name}" + ("" if deleted else " (the VM was already gone)") + ".")


@app.command("stop", epilog=examples("radops executors gcp stop gpu-a100"))
def stop(name: str = NAME_ARG, project: str | None = PROJECT_OPT) -> None:
    """Stop the VM (no compute charges; disks are still billed). Jobs on it end."""
    from radops.cli import render

    with render.progress_reporter(False) as progress:
        _provisioner(project).stop(name, progress)
    render.print_line(f"Stopped {name}. Start it again with: radops executors gcp start {name}")


@app.command("start", epilog=examples("radops executors gcp start gpu-a100"))
def start(name: str = NAME_ARG, project: str | None = PROJECT_OPT) -> None:
    """Start a stopped VM and update the executor's address (the external IP changes)."""
    from radops.cli import render

    with render.progress_reporter(False) as progress:
        ip = _provisioner(project).start(name, progress)
    render.print_line(f"Started {name} at {ip}.")


@app.command(
    "list", epilog=examples("radops executors gcp list", "radops executors gcp list --json")
)
def list_(project: str | None = PROJECT_OPT, json_output: bool = JSON_OPT) -> None:
    """List radops' VMs with their status; flag VMs without executors and executors without VMs."""
    from radops.cli import render

    rows = _provisioner(project).overview()
    if json_output:
        render.print_json(rows)
        return
    render.print_table(
        ("NAME", "ZONE", "STATUS", "EXTERNAL IP", "EXECUTOR"),
        [
            (
                str(r["name"]),
                r["zone"] or "",
                str(r["status"]),
                r["external_ip"] or "",
                r["executor"] or "-",
            )
            for r in rows
        ],
    )
    for row in rows:
        if row["problem"]:
            render.print_line(f"warning: {row['name']}: {row['problem']}", err=True)


def _template_json(template: Template) -> dict[str, object]:
    """A template for scripts: GPUs as objects (`{"type": ..., "count": ...}`), not pairs."""
    from dataclasses import asdict

    data: dict[str, object] = asdict(template)
    data["gpus"] = [{"type": kind, "count": count} for kind, count in template.gpus]
    return data
