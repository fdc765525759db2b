"""`gcp list`'s rows: each radops VM and GCP executor, with status, spot, autostop and idle time,
and what is wrong with it; and the error for a command that reaches a stopped VM."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radops.config import GCPExecutorSpec
from radops.errors import EngineUnreachableError, RadopsError
from radops.gcp.autostop import from_metadata

if TYPE_CHECKING:
    from radops.gcp.compute import VM, Compute
    from radops.store import ExecutorStore

STOPPED = ("STOPPING", "TERMINATED", "SUSPENDED")


def overview(compute: Compute, store: ExecutorStore) -> list[dict[str, Any]]:
    """radops' VMs and GCP executors of `compute`'s project side by side, with what is wrong
    with each."""
    config = store.load()
    executors = {
        n: s for n, s in config.executors.items()
        if isinstance(s, GCPExecutorSpec) and s.project == compute.project
    }  # fmt: skip
    vms = {vm.name: vm for vm in compute.managed()}
    rows: list[dict[str, Any]] = []
    for name in sorted(set(vms) | set(executors)):
        vm, spec = vms.get(name), executors.get(name)
        problem = None
        if vm is None:
            problem = "VM is gone: `radops executors remove " + name + "`"
        elif spec is None:
            why = "interrupted create" if name in config.gcp_pending else "no executor"
            problem = f"{why}: delete it with `radops executors gcp delete {name}`"
        row: dict[str, Any] = {
            "name": name,
            "zone": vm.zone if vm else spec.zone if spec else None,
            "status": vm.status if vm else "MISSING",
            "external_ip": vm.external_ip if vm else None,
            "executor": name if spec else None,
            "problem": problem,
        }
        row.update(_cost_safety(compute, vm, spec))
        rows.append(row)
    _drop_stale_pending(store, compute.project, set(vms))
    return rows


def _cost_safety(compute: Compute, vm: VM | None, spec: GCPExecutorSpec | None) -> dict[str, Any]:
    """Spot or on-demand, preemption, the autostop setting and, for a running VM whose
    watcher radops can reach, how long it has been idle (one SSH command)."""
    if vm is None:
        return {"provisioning_model": None, "preempted_at": None, "autostop": None,
                "idle_seconds": None, "watcher": None}  # fmt: skip
    preempted = compute.preempted_at(vm) if vm.spot and vm.status in STOPPED else None
    autostop = from_metadata(vm.metadata)
    idle, state = None, None
    if autostop is not None and vm.status == "RUNNING" and spec is not None:
        from radops.gcp.watcher_control import WatcherControl

        try:
            status = WatcherControl(spec).status()
            idle, state = status.idle_for, status.text()
        except RadopsError as e:
            state = f"unreachable: {e.message}"
    return {
        "provisioning_model": vm.provisioning_model,
        "preempted_at": preempted,
        "autostop": None if autostop is None else {
            "seconds": autostop.seconds, "action": autostop.action, "text": autostop.text()
        },
        "idle_seconds": idle,
        "watcher": state,
    }  # fmt: skip


def stopped_error(compute: Compute, vm: VM, executor: str) -> RadopsError | None:
    """The error for a command that reached a VM that is not running; None if it runs."""
    if vm.status not in STOPPED:
        return None
    resume = f"`radops executors gcp start {executor}` to resume"
    preempted = compute.preempted_at(vm) if vm.spot else None
    if preempted:
        return EngineUnreachableError(f"VM {vm.name} (spot) was preempted at {preempted}; {resume}")
    since = f" since {vm.last_stop}" if vm.last_stop else ""
    return EngineUnreachableError(
        f"VM {vm.name} is stopped ({vm.status}{since}); {resume}",
        "Autostop may have stopped it: see `radops executors gcp list`.",
    )


def _drop_stale_pending(store: ExecutorStore, project: str, existing: set[str]) -> None:
    """Pending entries whose VM was never created (or is gone) need no cleanup."""
    config = store.load()
    stale = [n for n, p in config.gcp_pending.items() if p.project == project and n not in existing]
    if stale:
        with store.edit() as config:
            for name in stale:
                config.gcp_pending.pop(name, None)
