"""`gcp create`: a VM from an instance template, made ready and registered as an executor.

A pending entry is recorded before the VM is inserted, and the VM is deleted again if anything
after the insert fails or is interrupted (unless asked to keep it), so no VM is left behind by
accident; an entry left by a killed radops is found by the next `gcp list` or `gcp delete`.
"""

from __future__ import annotations

import getpass
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from radops.config import PendingVM
from radops.errors import CloudError, HostKeyError, RadopsError, UsageError
from radops.gcp import autostop as autostop_setting
from radops.gcp import metadata_guard
from radops.gcp.compute import EXECUTOR_LABEL, MANAGED_LABEL, VM, spot_scheduling
from radops.gcp.google_errors import CapacityError
from radops.gcp.host_keys import GUEST_ATTRIBUTES_KEY, HOST_KEYS_WAIT_S, HostKeyTrust
from radops.gcp.keys import ssh_key_pair, with_ssh_key
from radops.gcp.waiting import poll_for
from radops.gcp.watcher_control import AutostopRefused, WatcherControl
from radops.names import LOCAL_EXECUTOR_NAME
from radops.rules import validate_executor_name
from radops.specs import GCPExecutorSpec, SSHHost
from radops.ssh.hostkeys import forget_host

if TYPE_CHECKING:
    from radops.executors.model import EngineReport
    from radops.gcp.autostop import Autostop
    from radops.gcp.compute import Compute, Template
    from radops.progress import ProgressCallback
    from radops.store import ExecutorStore

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


class VMCreation:
    """One `gcp create` in `compute`'s project: zone by zone until one has capacity, then
    boot, SSH, docker, autostop, register; the VM deleted on any failure after its insert."""

    def __init__(
        self,
        compute: Compute,
        store: ExecutorStore,
        request: CreateRequest,
        progress: ProgressCallback,
    ) -> None:
        self.compute = compute
        self.store = store
        self.request = request
        self.progress = progress
        self.name = check_vm_name(request.name)
        self.last_error: RadopsError | None = None  # why the VM was not ready yet, last time

    def run(self) -> GCPExecutorSpec:
        request, name = self.request, self.name
        self.store.ensure_new_name(name)
        template = self.compute.template(request.template)
        username = request.username or getpass.getuser()
        key_file, public_key = ssh_key_pair(self.store.directory)
        # The guest agent publishes the VM's SSH host keys only with guest attributes on.
        metadata = with_ssh_key(
            {**template.metadata, GUEST_ATTRIBUTES_KEY: "TRUE"}, username, public_key
        )
        if request.autostop is not None:
            metadata[autostop_setting.METADATA_KEY] = request.autostop.metadata_value()
        labels = {MANAGED_LABEL: "true", EXECUTOR_LABEL: name}
        scheduling = spot_scheduling(template) if request.spot else None
        for zone in request.zones:
            self._remember_pending(zone)
            self.progress(f"Creating VM {name} from template {template.name} in {zone}")
            try:
                op = self.compute.insert(zone, name, template, labels, metadata, scheduling)
            except KeyboardInterrupt:
                raise  # the insert may have gone through: the pending entry stays for `gcp list`
            except BaseException:
                self._forget_pending()
                raise
            try:
                self.compute.wait(zone, op, f"creating VM {name}")
            except CapacityError as e:  # no VM was made in this zone
                self._forget_pending()
                if zone == request.zones[-1]:
                    raise
                self.progress(f"{e.message}; trying the next zone")
                continue
            except BaseException as e:
                self._clean_up(zone, _why(e))
                raise
            return self._finish(template, zone, SSHHost(
                hostname="0.0.0.0", username=username, identity_file=str(key_file)
            ))  # fmt: skip
        raise CloudError("no zone to create the VM in")  # unreachable: zones is never empty

    def _finish(self, template: Template, zone: str, login: SSHHost) -> GCPExecutorSpec:
        """After the insert: boot, SSH, docker, register; on any failure, delete the VM."""
        try:
            spec = self._make_ready(template, zone, login)
            with self.store.edit() as config:
                config.executors[spec.name] = spec
                config.gcp_pending.pop(spec.name, None)
            return spec
        except BaseException as e:  # Ctrl-C included: nothing half-done stays behind
            self._clean_up(zone, _why(e))
            raise

    def _clean_up(self, zone: str, why: str) -> None:
        if self.request.keep_on_failure:
            self.progress(f"Keeping VM {self.name} for inspection (--keep-on-failure)")
            return
        self.progress(f"Deleting VM {self.name} ({why})")
        self.compute.delete(zone, self.name)
        self._forget_pending()

    def _make_ready(self, template: Template, zone: str, login: SSHHost) -> GCPExecutorSpec:
        timeout = self.request.timeout
        deadline = time.monotonic() + timeout  # one budget for boot, SSH and docker
        self.progress(f"Booting {self.name}")
        vm = self._wait_running(zone, timeout)
        assert vm.external_ip is not None
        spec = GCPExecutorSpec(
            name=self.name,
            ssh=login.model_copy(update={"hostname": vm.external_ip}),
            project=self.compute.project,
            zone=zone,
            instance=self.name,
        )
        # A new VM at this address: a key radops trusted here before belonged to another machine.
        forget_host(self.store.known_hosts, vm.external_ip)
        self.progress(f"Waiting for SSH on {vm.external_ip}")
        remaining = max(deadline - time.monotonic(), 1.0)
        report, fingerprint = self._wait_for_docker(spec, template, remaining)
        self.progress(report.summary())
        spec.platform = report.platform
        spec.host_key_fingerprint = fingerprint
        return spec

    def _wait_running(self, zone: str, timeout: float) -> VM:
        vm = poll_for(lambda: self.compute.running(zone, self.name), timeout)
        if vm is None:
            raise CloudError(
                f"VM {self.name} was not running with an external IP within {timeout:.0f}s"
            )
        return vm

    def _wait_for_docker(
        self, spec: GCPExecutorSpec, template: Template, timeout: float
    ) -> tuple[EngineReport, str]:
        """Connect, trusting only the host keys the VM published, and check docker, and GPUs
        when the template has them (drivers may still be installing on first boot); then arm
        autostop over the same connection. Returns the report and the verified key."""
        budget = self.request.timeout
        trust = HostKeyTrust(self.compute, spec, min(HOST_KEYS_WAIT_S, budget / 2), self.progress)
        found = poll_for(lambda: self._attempt(spec, template, trust), timeout, interval=2.0)
        if found is None:
            last = self.last_error
            reason = f": {last.message}" if last else ""
            raise CloudError(
                f"SSH and docker on {spec.name} were not ready within {budget:.0f}s{reason}",
                last.hint if last else None,
            )
        return found

    def _attempt(
        self, spec: GCPExecutorSpec, template: Template, trust: HostKeyTrust
    ) -> tuple[EngineReport, str] | None:
        """One try at the new VM: its report and key, or None to try again later."""
        from radops.gcp.login import vm_executor

        try:
            options = trust.options()  # an API error here is waited out like the rest
            if options is None:
                return None  # the VM has not published its host keys yet
            with vm_executor(spec, options) as executor:
                report = executor.check()
                if template.gpus and not report.gpus:
                    raise RadopsError(
                        f"the template has GPUs ({template.gpu_text()}) but nvidia-smi sees none",
                        "Use an image with the NVIDIA driver (e.g. a Deep Learning VM image).",
                    )
                fingerprint = executor.host_key_fingerprint()
                metadata_guard.install(executor, spec.name, self.progress)
                autostop = self.request.autostop
                if autostop is not None:
                    self.progress(f"Arming autostop on {spec.name}: {autostop.text()} idle")
                    WatcherControl(spec).arm(autostop, executor)
                return report, fingerprint
        except (HostKeyError, UsageError, AutostopRefused):
            raise  # waiting will not change these
        except RadopsError as e:
            if self.last_error is None or self.last_error.message != e.message:
                self.progress(f"Not ready yet: {e.message}")  # each new reason once
            self.last_error = e
            return None

    def _remember_pending(self, zone: str) -> None:
        with self.store.edit() as config:
            config.gcp_pending[self.name] = PendingVM(
                project=self.compute.project, zone=zone, instance=self.name
            )

    def _forget_pending(self) -> None:
        with self.store.edit() as config:
            config.gcp_pending.pop(self.name, None)
