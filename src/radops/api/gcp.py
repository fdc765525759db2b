"""GPU VMs on Google Cloud: templates, create, stop, start, delete, autostop, and the list of
radops' VMs. Each call reads the settings once and works through one `Provisioner`."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from radops.errors import UsageError

if TYPE_CHECKING:
    from radops.gcp.autostop import Autostop
    from radops.gcp.compute import Template
    from radops.gcp.overview import VMRow
    from radops.gcp.provision import Provisioner
    from radops.progress import ProgressCallback
    from radops.specs import GCPExecutorSpec
    from radops.store import ExecutorStore


def provisioner(
    project: str | None = None, zone: str | None = None, store: ExecutorStore | None = None
) -> Provisioner:
    """The project's provisioner: --project/--zone, else the settings, environment, gcloud."""
    from radops.gcp.provision import Provisioner
    from radops.gcp.settings import resolve_target
    from radops.store import ExecutorStore

    store = store or ExecutorStore()
    return Provisioner(resolve_target(store.load().settings, project, zone), store)


def _quiet(line: str) -> None:
    """The progress callback of a caller that gave none."""


def templates(project: str | None = None) -> list[Template]:
    """The project's instance templates, global and regional: the VM types one can create."""
    return provisioner(project).compute.templates()


def create(
    template: str,
    name: str | None = None,
    *,
    project: str | None = None,
    zone: str | None = None,
    zones: Sequence[str] = (),
    any_zone: bool = False,
    username: str | None = None,
    timeout: float = 600,
    keep_on_failure: bool = False,
    autostop: str | None = None,
    autostop_delete: bool = False,
    spot: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[GCPExecutorSpec, Autostop | None]:
    """A VM from `template`, ready (SSH, docker, GPUs) and registered as executor `name`
    (default radops-<6 hex>); deleted again if anything fails or is interrupted. Returns the
    executor and its autostop setting (`autostop`, else the `gcp_autostop` setting)."""
    from radops.gcp.autostop import requested
    from radops.gcp.create import CreateRequest, candidate_zones
    from radops.plainconfig import resolve_setting

    prov = provisioner(project, zone)
    default = resolve_setting(prov.store.load().settings, "gcp_autostop")
    idle = requested(autostop, autostop_delete, default)
    chosen = [z for z in zones if z] or ([prov.target.zone] if prov.target.zone else [])
    tmpl = prov.compute.template(template)
    request = CreateRequest(
        template=template,
        name=name or f"radops-{secrets.token_hex(3)}",
        zones=candidate_zones(prov.compute, tmpl, chosen, any_zone),
        username=username,
        timeout=timeout,
        keep_on_failure=keep_on_failure,
        autostop=idle,
        spot=spot,
    )
    return prov.create(request, progress or _quiet), idle


def delete(name: str, project: str | None = None, progress: ProgressCallback | None = None) -> bool:
    """Delete VM `name` and its executor; True if a VM was deleted (False: already gone)."""
    return provisioner(project).delete(name, progress or _quiet)


def stop(name: str, project: str | None = None, progress: ProgressCallback | None = None) -> None:
    """Stop the VM (no compute charges; disks still bill). Its jobs end."""
    provisioner(project).stop(name, progress or _quiet)


def start(name: str, project: str | None = None, progress: ProgressCallback | None = None) -> str:
    """Start a stopped (or preempted) VM, record its new IP, re-arm autostop; the IP."""
    return provisioner(project).start(name, progress or _quiet)


def set_autostop(
    name: str,
    duration: str,
    delete: bool = False,
    project: str | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Autostop | None, bool]:
    """Stop (or, with `delete`, delete) VM `name` after `duration` idle (`off`: never).
    Returns the setting and whether the watcher was armed now (False: at the next start)."""
    from radops.gcp.autostop import Autostop, parse_duration

    _check_owns_vm(name)
    seconds = parse_duration(duration, "autostop duration")
    if seconds is None and delete:
        raise UsageError("--autostop-delete needs a duration, not off")
    setting = None if seconds is None else Autostop(seconds, "delete" if delete else "stop")
    return setting, provisioner(project).set_autostop(name, setting, progress or _quiet)


def _check_owns_vm(name: str) -> None:
    """Refuse, before calling Google, a registered executor that has no VM of radops'."""
    from radops.api.kinds import executor_class
    from radops.executors.features import Feature
    from radops.names import LOCAL_EXECUTOR_NAME
    from radops.store import ExecutorStore

    spec = None if name == LOCAL_EXECUTOR_NAME else ExecutorStore().load().executors.get(name)
    kind = "local" if spec is None else spec.kind
    if name == LOCAL_EXECUTOR_NAME or (
        spec is not None and Feature.OWN_VM not in executor_class(kind, name).features
    ):
        raise UsageError(
            f"executor {name!r} is not a GCP executor (kind {kind}): autostop is for GCP VMs",
            "Stop its jobs with `radops executors stop`; see `radops executors gcp list`.",
        )


def vms(project: str | None = None) -> list[VMRow]:
    """radops' VMs and GCP executors side by side: status, spot, autostop, idle time, and
    what is wrong with each (one SSH command per running VM with autostop)."""
    return provisioner(project).overview()
