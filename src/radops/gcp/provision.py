"""Create, delete, stop and start radops' GCP VMs, keeping the executor store in step.

A create records a pending entry before it inserts the VM, and deletes the VM again if anything
after the insert fails or is interrupted (unless asked to keep it), so no VM is left behind by
accident; an entry left by a killed radops is found by the next `gcp list` or `gcp delete`.
"""

from __future__ import annotations

import dataclasses
import getpass
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from radops.config import PendingVM
from radops.errors import CloudError, HostKeyError, NotFoundError, RadopsError, UsageError
from radops.gcp import autostop as autostop_setting
from radops.gcp import metadata_guard
from radops.gcp.compute import (
    EXECUTOR_LABEL,
    MANAGED_LABEL,
    VM,
    CapacityError,
    Compute,
    poll,
    spot_scheduling,
)
from radops.gcp.host_keys import GUEST_ATTRIBUTES_KEY, HOST_KEYS_WAIT_S, HostKeyTrust
from radops.gcp.keys import ssh_key_pair, with_ssh_key
from radops.gcp.watcher_control import AutostopRefused, WatcherControl
from radops.specs import LOCAL_EXECUTOR_NAME, GCPExecutorSpec, SSHHost, validate_executor_name
from radops.ssh.hostkeys import forget_host
from radops.store import ExecutorStore, config_dir

if TYPE_CHECKING:
    from radops.executors.model import EngineReport
    from radops.gcp.autostop import Autostop
    from radops.gcp.compute import Template
    from radops.gcp.overview import VMRow
    from radops.gcp.settings import GCPTarget
    from radops.progress import ProgressCallback

READY_TIMEOUT_S = 600
_VM_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class CreateRequest:
    template: str
    name: str
    zones: list[str]
    username: str | None = None
    timeout: float = READY_TIMEOUT_S
    keep_on_failure: bool = False
    autostop: Autostop | None = None  # armed once SSH works, before the executor is saved
    spot: bool = False


def check_vm_name(name: str) -> str:
    """GCE instance names: lowercase letters, digits and '-', starting with a letter."""
    validate_executor_name(name)
    if name == LOCAL_EXECUTOR_NAME:
        raise UsageError("'local' is built in: it cannot be a VM's executor name")
    if not _VM_NAME.fullmatch(name):
        raise UsageError(
            f"invalid VM name {name!r}: Compute Engine wants lowercase letters, digits and '-', "
            "starting with a letter"
        )
    return name


def candidate_zones(
    compute: Compute, template: Template, zones: list[str], any_zone: bool
) -> list[str]:
    """Zones to try in order: the given ones, then (--any-zone) the rest of the region."""
    if any_zone:
        region = template.region or (zones[0].rsplit("-", 1)[0] if zones else None)
        if region is None:
            raise UsageError("--any-zone needs a regional template or a --zone to name the region")
        others = [z for z in compute.zones_in_region(region) if z not in zones]
        zones = [*zones, *others]
    if not zones:
        raise UsageError(
            "no zone given",
            "Pass --zone, set RADOPS_GCP_ZONE, or `radops config set gcp_zone ZONE`.",
        )
    return zones


def _why(e: BaseException) -> str:
    return "interrupted" if isinstance(e, KeyboardInterrupt) else "creation failed"


class Provisioner:
    """The GCP side of radops for one project, and its effects on the executor store."""

    def __init__(self, target: GCPTarget, store: ExecutorStore | None = None) -> None:
        self.target = target
        self.compute = Compute(target)
        self.store = store or ExecutorStore()

    # create --------------------------------------------------------------------------------

    def create(self, request: CreateRequest, progress: ProgressCallback) -> GCPExecutorSpec:
        name = check_vm_name(request.name)
        self.store.ensure_new_name(name)
        template = self.compute.template(request.template)
        username = request.username or getpass.getuser()
        key_file, public_key = ssh_key_pair(config_dir())
        # The guest agent publishes the VM's SSH host keys only with guest attributes on.
        metadata = with_ssh_key(
            {**template.metadata, GUEST_ATTRIBUTES_KEY: "TRUE"}, username, public_key
        )
        if request.autostop is not None:
            metadata[autostop_setting.METADATA_KEY] = request.autostop.metadata_value()
        labels = {MANAGED_LABEL: "true", EXECUTOR_LABEL: name}
        scheduling = spot_scheduling(template) if request.spot else None
        for zone in request.zones:
            self._remember_pending(name, zone)
            progress(f"Creating VM {name} from template {template.name} in {zone}")
            try:
                op = self.compute.insert(zone, name, template, labels, metadata, scheduling)
            except KeyboardInterrupt:
                raise  # the insert may have gone through: the pending entry stays for `gcp list`
            except BaseException:
                self._forget_pending(name)
                raise
            try:
                self.compute.wait(zone, op, f"creating VM {name}")
            except CapacityError as e:  # no VM was made in this zone
                self._forget_pending(name)
                if zone == request.zones[-1]:
                    raise
                progress(f"{e.message}; trying the next zone")
                continue
            except BaseException as e:
                self._clean_up(request.name, zone, _why(e), request.keep_on_failure, progress)
                raise
            return self._finish(request, template, zone, username, str(key_file), progress)
        raise CloudError("no zone to create the VM in")  # unreachable: zones is never empty

    def _finish(
        self,
        request: CreateRequest,
        template: Template,
        zone: str,
        username: str,
        key_file: str,
        progress: ProgressCallback,
    ) -> GCPExecutorSpec:
        """After the insert: boot, SSH, docker, register; on any failure, delete the VM."""
        try:
            spec = self._make_ready(request, template, zone, username, key_file, progress)
            with self.store.edit() as config:
                config.executors[spec.name] = spec
                config.gcp_pending.pop(spec.name, None)
            return spec
        except BaseException as e:  # Ctrl-C included: nothing half-done stays behind
            self._clean_up(request.name, zone, _why(e), request.keep_on_failure, progress)
            raise

    def _clean_up(
        self, name: str, zone: str, why: str, keep: bool, progress: ProgressCallback
    ) -> None:
        if keep:
            progress(f"Keeping VM {name} for inspection (--keep-on-failure)")
            return
        progress(f"Deleting VM {name} ({why})")
        self.compute.delete(zone, name)
        self._forget_pending(name)

    def _make_ready(
        self,
        request: CreateRequest,
        template: Template,
        zone: str,
        username: str,
        key_file: str,
        progress: ProgressCallback,
    ) -> GCPExecutorSpec:
        deadline = time.monotonic() + request.timeout  # one budget for boot, SSH and docker
        progress(f"Booting {request.name}")
        vm = self._wait_running(zone, request.name, request.timeout)
        assert vm.external_ip is not None
        spec = GCPExecutorSpec(
            name=request.name,
            ssh=SSHHost(hostname=vm.external_ip, username=username, identity_file=key_file),
            project=self.target.project,
            zone=zone,
            instance=request.name,
        )
        # A new VM at this address: a key radops trusted here before belonged to another machine.
        forget_host(config_dir() / "known_hosts", vm.external_ip)
        progress(f"Waiting for SSH on {vm.external_ip}")
        remaining = max(deadline - time.monotonic(), 1.0)
        report, fingerprint = self._wait_for_docker(
            spec, template, remaining, request.timeout, progress, request.autostop
        )
        progress(report.summary())
        spec.platform = report.platform
        spec.host_key_fingerprint = fingerprint
        return spec

    def _wait_running(self, zone: str, name: str, timeout: float) -> VM:
        found: list[VM] = []

        def running() -> bool:
            vm = self.compute.get(zone, name)
            if vm is None:
                raise CloudError(f"VM {name} disappeared while booting")
            found[:] = [vm]
            return vm.status == "RUNNING" and vm.external_ip is not None

        if not poll(running, timeout):
            raise CloudError(f"VM {name} was not running with an external IP within {timeout:.0f}s")
        return found[0]

    def _wait_for_docker(
        self,
        spec: GCPExecutorSpec,
        template: Template,
        timeout: float,
        budget: float,
        progress: ProgressCallback,
        autostop: Autostop | None = None,
    ) -> tuple[EngineReport, str]:
        """Connect, trusting only the host keys the VM published, and check docker, and GPUs
        when the template has them (drivers may still be installing on first boot); then arm
        autostop over the same connection."""
        from radops.executors.ssh.executor import SSHExecutor
        from radops.gcp.login import vm_executor

        result: list[tuple[EngineReport, str]] = []
        last_error: list[RadopsError] = []
        trust = HostKeyTrust(self.compute, spec, min(HOST_KEYS_WAIT_S, budget / 2), progress)

        def attempt(executor: SSHExecutor) -> bool:
            report = executor.check()
            if template.gpus and not report.gpus:
                raise RadopsError(
                    f"the template has GPUs ({template.gpu_text()}) but nvidia-smi sees none",
                    "Use an image with the NVIDIA driver (e.g. a Deep Learning VM image).",
                )
            result[:] = [(report, executor.host_key_fingerprint())]
            metadata_guard.install(executor, spec.name, progress)
            if autostop is not None:
                progress(f"Arming autostop on {spec.name}: {autostop.text()} idle")
                WatcherControl(spec).arm(autostop, executor)
            return True

        def ready() -> bool:
            executor: SSHExecutor | None = None
            try:
                options = trust.options()  # an API error here is waited out like the rest
                if options is None:
                    return False  # the VM has not published its host keys yet
                executor = vm_executor(spec, options)
                return attempt(executor)
            except (HostKeyError, UsageError, AutostopRefused):
                raise  # waiting will not change these
            except RadopsError as e:
                if not last_error or last_error[0].message != e.message:
                    progress(f"Not ready yet: {e.message}")  # each new reason once
                last_error[:] = [e]
                return False
            finally:
                if executor is not None:
                    executor.close()

        if not poll(ready, timeout, interval=2.0):
            reason = f": {last_error[0].message}" if last_error else ""
            raise CloudError(
                f"SSH and docker on {spec.name} were not ready within {budget:.0f}s{reason}",
                last_error[0].hint if last_error else None,
            )
        return result[0]

    def _remember_pending(self, name: str, zone: str) -> None:
        with self.store.edit() as config:
            config.gcp_pending[name] = PendingVM(
                project=self.target.project, zone=zone, instance=name
            )

    def _forget_pending(self, name: str) -> None:
        with self.store.edit() as config:
            config.gcp_pending.pop(name, None)

    # delete / stop / start -----------------------------------------------------------------

    def _locate(self, name: str) -> tuple[str, GCPExecutorSpec | None]:
        """The zone of VM `name`: from its executor, a pending entry, or the project's VMs."""
        config = self.store.load()
        spec = config.executors.get(name)
        if spec is not None:
            if not isinstance(spec, GCPExecutorSpec):
                raise UsageError(f"executor {name!r} is not a GCP executor (kind {spec.kind})")
            self._use_project(spec.project)
            return spec.zone, spec
        pending = config.gcp_pending.get(name)
        if pending is not None:
            self._use_project(pending.project)
            return pending.zone, None
        for vm in self.compute.managed():
            if vm.name == name:
                return vm.zone, None
        raise NotFoundError(
            f"no GCP executor or radops VM named {name!r}",
            "See `radops executors gcp list`.",
        )

    def _use_project(self, project: str) -> None:
        """A VM lives in its own project, whatever the current default is."""
        if project != self.target.project:
            self.target = dataclasses.replace(self.target, project=project)
            self.compute = Compute(self.target)

    def delete(self, name: str, progress: ProgressCallback) -> bool:
        """Delete the VM (already gone is fine) and its executor; True if a VM was deleted."""
        zone, spec = self._locate(name)
        progress(f"Deleting VM {name} in {zone}")
        deleted = self.compute.delete(zone, spec.instance if spec else name)
        if spec is not None:
            forget_host(config_dir() / "known_hosts", spec.ssh.hostname)
        with self.store.edit() as config:
            config.executors.pop(name, None)
            config.gcp_pending.pop(name, None)
        return deleted

    def stop(self, name: str, progress: ProgressCallback) -> None:
        zone, spec = self._locate(name)
        progress(f"Stopping VM {name}")
        self.compute.stop(zone, spec.instance if spec else name)

    def start(self, name: str, progress: ProgressCallback, timeout: float = READY_TIMEOUT_S) -> str:
        """Start the VM and record its new external IP on the executor; return the IP."""
        zone, spec = self._locate(name)
        if spec is None:
            raise NotFoundError(f"VM {name!r} has no executor to start")
        progress(f"Starting VM {name}")
        self.compute.start(zone, spec.instance)
        vm = self._wait_running(zone, spec.instance, timeout)
        assert vm.external_ip is not None
        with self.store.edit() as config:
            stored = config.executors.get(name)
            if stored is not None:
                stored.ssh.hostname = vm.external_ip
        autostop = autostop_setting.from_metadata(vm.metadata)
        if autostop is not None:  # a restarted VM starts its idle clock again
            ssh = spec.ssh.model_copy(update={"hostname": vm.external_ip})
            spec = spec.model_copy(update={"ssh": ssh})
            WatcherControl(spec).arm_when_reachable(autostop, timeout, progress)
            progress(f"Autostop armed on {name}: {autostop.text()} idle")
        return vm.external_ip

    def set_autostop(
        self, name: str, autostop: Autostop | None, progress: ProgressCallback
    ) -> bool:
        """Record the setting on the VM and, if it runs, arm (or disarm) its watcher now;
        True if the watcher was changed, False if that waits for `gcp start`."""
        zone, spec = self._locate(name)
        if spec is None:
            raise NotFoundError(
                f"VM {name!r} has no executor: radops cannot reach it to set autostop",
                f"Delete it (`radops executors gcp delete {name}`) or create a new one.",
            )
        vm = self.compute.get(zone, spec.instance)
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
            self.compute.set_metadata(zone, vm, metadata)
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

        self._use_project(spec.project)
        try:
            vm = self.compute.get(spec.zone, spec.instance)
        except RadopsError:
            return None
        if vm is None:
            return NotFoundError(
                f"VM {spec.instance} of executor {spec.name} is gone",
                f"Remove the executor: radops executors remove {spec.name}",
            )
        return stopped_error(self.compute, vm, spec.name)
