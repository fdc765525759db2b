"""The GCP executor: an SSH executor on a VM that radops created, with the VM's own rules.

Its host key was pinned when the VM was made (trusted under any new address, and the only
key trusted); every command counts as use of the VM for its autostop watcher; and when the
VM does not answer, Compute Engine is asked why (stopped, preempted, gone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radops.errors import RadopsError
from radops.executors.base import Ask, SpecType
from radops.executors.features import Feature
from radops.executors.ssh.executor import SSHExecutor

if TYPE_CHECKING:
    from radops.gcp.provision import Provisioner
    from radops.progress import ProgressCallback
    from radops.specs import GCPExecutorSpec


class GCPExecutor(SSHExecutor):
    """Jobs on a radops-made GCP VM, reached like any SSH executor."""

    kind = "gcp"
    title = "GCP executors"
    spec_type = SpecType("GCPExecutorSpec")

    features = SSHExecutor.features | {Feature.OWN_VM}
    left_behind = "Its VM still exists; delete it with: radops executors gcp delete {name}"

    spec: GCPExecutorSpec  # type: ignore[assignment]

    @classmethod
    def ask_fields(cls, fields: dict[str, Any], ask: Ask) -> dict[str, Any]:
        from radops.errors import UsageError

        raise UsageError(
            "GCP executors are added by creating their VM",
            "radops executors gcp create TEMPLATE NAME",
        )

    def _prefix(self) -> tuple[str, ...]:
        from radops.gcp.activity import activity_prefix

        return tuple(activity_prefix())

    def _pinned(self) -> frozenset[str]:
        """The key pinned at `gcp create`: trusted under any new address, and no other key
        is, whatever the flags."""
        pinned = set(super()._pinned())
        if self.spec.host_key_fingerprint:
            pinned.add(self.spec.host_key_fingerprint)
        return frozenset(pinned)

    def delete_machine(self, progress: ProgressCallback) -> bool:
        return self._provisioner().delete(self.name, progress)

    def _provisioner(self) -> Provisioner:
        from radops.gcp.provision import Provisioner
        from radops.gcp.settings import resolve_target

        return Provisioner(resolve_target(self.context.settings, self.spec.project))

    def explain_unreachable(self, error: RadopsError) -> RadopsError | None:
        try:
            return self._provisioner().why_unreachable(self.spec)
        except RadopsError:  # the original error says enough when Google cannot be asked
            return None
