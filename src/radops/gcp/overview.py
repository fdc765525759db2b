"""`gcp list`'s rows: each radops VM and GCP executor, with status, spot, autostop and idle time,
and what is wrong with it; and the error for a command that reaches a stopped VM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from radops.errors import EngineUnreachableError, RadopsError
from radops.gcp.autostop import from_metadata
from radops.specs import GCPExecutorSpec

if TYPE_CHECKING:
    from radops.gcp.compute import VM, Compute
    from radops.store import ExecutorStore

STOPPED = ("STOPPING", "TERMINATED", "SUSPENDED")


@dataclass(frozen=True)
class Autostopping:
    """A VM's autostop setting, as `gcp list` shows it."""

    seconds: int
    action: str  # stop or delete
    text: str  # 30m, 2h (delete)


@dataclass(frozen=True)
class CostSafety:
    """What keeps a VM from costing money unseen: spot or not, autostop, idle time."""

    provisioning_model: str | None = None  # SPOT or STANDARD
    preempted_at: str | None = None  # when Google stopped a spot VM
    autostop: Autostopping | None = None
    idle_seconds: int | None = None  # a running VM's time without a radops job or command
    watcher: str | None = None  # the watcher's state (armed, ...) or why it cannot be read


@dataclass(frozen=True)
class VMRow:
    """One radops VM or GCP executor (or both), and what is wrong with it."""

    name: str
    zone: str | None
    status: str  # Compute Engine's, or MISSING when the VM is gone
    external_ip: str | None
    executor: str | None
    problem: str | None
    cost: CostSafety

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        data = asdict(self)
        return {**{k: v for k, v in data.items() if k != "cost"}, **data["cost"]}


def overview(compute: Compute, store: ExecutorStore) -> list[VMRow]:
    """radops' VMs and GCP executors of `compute`'s project side by side, with what is wrong
    with each. Reads only (the config, the API, each watcher)."""
    config = store.load()
    executors = {
        n: s for n, s in config.executors.items()
        if isinstance(s, GCPExecutorSpec) and s.project == compute.project
    }  # fmt: skip
    vms = {vm.name: vm for vm in compute.managed()}
    rows: list[VMRow] = []
    for name in sorted(set(vms) | set(executors)):
        vm, spec = vms.get(name), executors.get(name)
        problem = None
        if vm is None:
            problem = "VM is gone: `radops executors remove " + name + "`"
        elif spec is None:
            why = "interrupted create" if name in config.gcp_pending else "no executor"
            problem = f"{why}: delete it with `radops executors gcp delete {name}`"
        rows.append(
            VMRow(
                name=name,
                zone=vm.zone if vm else spec.zone if spec else None,
                status=vm.status if vm else "MISSING",
                external_ip=vm.external_ip if vm else None,
                executor=name if spec else None,
                problem=problem,
                cost=_cost_safety(compute, vm, spec),
            )
        )
    return rows


def _cost_safety(compute: Compute, vm: VM | None, spec: GCPExecutorSpec | None) -> CostSafety:
    """Spot or on-demand, preemption, the autostop setting and, for a running VM whose
    watcher radops can reach, how long it has been idle (one SSH command)."""
    if vm is None:
        return CostSafety()
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
    return CostSafety(
        provisioning_model=vm.provisioning_model,
        preempted_at=preempted,
        autostop=None if autostop is None else Autostopping(
            autostop.seconds, autostop.action, autostop.text()
        ),
        idle_seconds=idle,
        watcher=state,
    )  # fmt: skip


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
