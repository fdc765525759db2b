"""Create, delete, stop and start radops' GCP VMs, keeping the executor store in step.

A VM lives in its own project, whatever the current default is: each call works through the
Compute client of the VM's project (`_compute_for`), the default's (`self.compute`) when it
has no executor or pending entry yet.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

from radops.errors import CloudError, NotFoundError, RadopsError, UsageError
from radops.gcp import autostop as autostop_setting
from radops.gcp.compute import Compute
from radops.gcp.create import READY_TIMEOUT_S, CreateRequest, VMCreation
from radops.gcp.resume import report_jobs_back
from radops.gcp.waiting import poll_for
from radops.gcp.watcher_control import WatcherControl
from radops.specs import GCPExecutorSpec
from radops.ssh.hostkeys import forget_host
from radops.store import ExecutorStore

if TYPE_CHECKING:
    from radops.gcp.autostop import Autostop
    from radops.gcp.overview import VMRow
    from radops.gcp.settings import GCPTarget
    from radops.progress import ProgressCallback


class VMPlace(NamedTuple):
    """Where a VM is: its zone, its executor (None: it has none), its project's client."""

    zone: str
    spec: GCPExecutorSpec | None
    compute: Compute


class Provisioner:
    """The GCP side of radops for one project, and its effects on the executor store."""

    def __init__(self, target: GCPTarget, store: ExecutorStore | None = None) -> None:
        self.target = target
        self.compute = Compute(target)
        self.store = store or ExecutorStore()
        self._computes = {target.project: self.compute}

    # create --------------------------------------------------------------------------------

    def create(self, request: CreateRequest, progress: ProgressCallback) -> GCPExecutorSpec:
        """A VM from the request's template, ready and registered (see radops.gcp.create)."""
        return VMCreation(self.compute, self.store, request, progress).run()

    # delete / stop / start -----------------------------------------------------------------

    def _locate(self, name: str) -> VMPlace:
        """Where VM `name` is: from its executor, a pending entry, or the project's VMs."""
        config = self.store.load()
        spec = config.executors.get(name)
        if spec is not None:
            if not isinstance(spec, GCPExecutorSpec):
                raise UsageError(f"executor {name!r} is not a GCP executor (kind {spec.kind})")
            return VMPlace(spec.zone, spec, self._compute_for(spec.project))
        pending = config.gcp_pending.get(name)
        if pending is not None:
            return VMPlace(pending.zone, None, self._compute_for(pending.project))
        for vm in self.compute.managed():
            if vm.name == name:
                return VMPlace(vm.zone, None, self.compute)
        raise NotFoundError(
            f"no GCP executor or radops VM named {name!r}",
            "See `radops executors gcp list`.",
        )

    def _compute_for(self, project: str) -> Compute:
        """The Compute client of `project` (a VM lives in its own project, whatever the
        current default is), made once."""
        if project not in self._computes:
            self._computes[project] = Compute(dataclasses.replace(self.target, project=project))
        return self._computes[project]

    def delete(self, name: str, progress: ProgressCallback) -> bool:
        """Delete the VM (already gone is fine) and its executor; True if a VM was deleted."""
        zone, spec, compute = self._locate(name)
        progress(f"Deleting VM {name} in {zone}")
        deleted = compute.delete(zone, spec.instance if spec else name)
        if spec is not None:
            forget_host(self.store.known_hosts, spec.ssh.hostname)
        with self.store.edit() as config:
            config.executors.pop(name, None)
            config.gcp_pending.pop(name, None)
        return deleted

    def stop(self, name: str, progress: ProgressCallback) -> None:
        zone, spec, compute = self._locate(name)
        progress(f"Stopping VM {name}")
        compute.stop(zone, spec.instance if spec else name)

    def start(self, name: str, progress: ProgressCallback, timeout: float = READY_TIMEOUT_S) -> str:
        """Start the VM and record its new external IP on the executor; return the IP."""
        zone, spec, compute = self._locate(name)
        if spec is None:
            raise NotFoundError(f"VM {name!r} has no executor to start")
        progress(f"Starting VM {name}")
        compute.start(zone, spec.instance)
        instance = spec.instance
        vm = poll_for(lambda: compute.running(zone, instance), timeout)
        if vm is None:
            raise CloudError(f"VM {name} was not running with an external IP within {timeout:.0f}s")
        assert vm.external_ip is not None
        with self.store.edit() as config:
            stored = config.executors.get(name)
            if stored is not None:
                stored.ssh.hostname = vm.external_ip
        autostop = autostop_setting.from_metadata(vm.metadata)
        ssh = spec.ssh.model_copy(update={"hostname": vm.external_ip})
        spec = spec.model_copy(update={"ssh": ssh})
        if autostop is not None:  # a restarted VM starts its idle clock again
            WatcherControl(spec).arm_when_reachable(autostop, timeout, progress)
            progress(f"Autostop armed on {name}: {autostop.text()} idle")
        report_jobs_back(spec, timeout, progress)  # --restart unless-stopped / always
        return vm.external_ip

    def set_autostop(
        self, name: str, autostop: Autostop | None, progress: ProgressCallback
    ) -> bool:
        """Record the setting on the VM and, if it runs, arm (or disarm) its watcher now;
        True if the watcher was changed, False if that waits for `gcp start`."""
        zone, spec, compute = self._locate(name)
        if spec is None:
            raise NotFoundError(
                f"VM {name!r} has no executor: radops cannot reach it to set autostop",
                f"Delete it (`radops executors gcp delete {name}`) or create a new one.",
            )
        vm = compute.get(zone, spec.instance)
        if vm is None:
            raise NotFoundError(
                f"VM {name} is gone", f"Remove its executor: radops executors remove {name}"
            )
        metadata = dict(vm.metadata)
        if autostop is None:
            metadata.pop(autostop_setting.METADATA_KEY, None)
        else:
            metadata[autostop_setting.METADATA_KEY] = autostop.metadata_value()
        running = vm.status == "RUNNING"
        if running:  # the VM first: a watcher that refuses to arm leaves the setting unchanged
            control = WatcherControl(spec)
            if autostop is None:
                progress(f"Turning the watcher on {name} off")
                control.disarm()
            else:
                progress(f"Arming autostop on {name}: {autostop.text()} idle")
                control.arm(autostop)
        if metadata != vm.metadata:
            progress(f"Recording autostop on VM {name}")
            compute.set_metadata(zone, vm, metadata)
        return running

    # list ----------------------------------------------------------------------------------

    def overview(self) -> list[VMRow]:
        """radops' VMs and GCP executors side by side (see radops.gcp.overview); pending
        entries whose VM never appeared (or is gone) are dropped: they need no cleanup."""
        from radops.gcp.overview import overview

        rows = overview(self.compute, self.store)
        existing = {row.name for row in rows if row.status != "MISSING"}
        stale = [name for name, p in self.store.load().gcp_pending.items()
                 if p.project == self.target.project and name not in existing]  # fmt: skip
        if stale:
            with self.store.edit() as config:
                for name in stale:
                    config.gcp_pending.pop(name, None)
        return rows

    # errors --------------------------------------------------------------------------------

    def why_unreachable(self, spec: GCPExecutorSpec) -> RadopsError | None:
        """Why a GCP executor's VM does not answer, if Compute Engine says (stopped,
        preempted, gone); None when it is running or the API cannot tell."""
        from radops.gcp.overview import stopped_error

        compute = self._compute_for(spec.project)
        try:
            vm = compute.get(spec.zone, spec.instance)
        except RadopsError:
            return None
        if vm is None:
            return NotFoundError(
                f"VM {spec.instance} of executor {spec.name} is gone",
                f"Remove the executor: radops executors remove {spec.name}",
            )
        return stopped_error(compute, vm, spec.name)
