"""Arm, disarm and read a VM's autostop watcher over SSH: one connection, one command each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from radops.errors import RadopsError
from radops.gcp import watcher
from radops.gcp.waiting import poll

if TYPE_CHECKING:
    from radops.executors.ssh.executor import SSHExecutor
    from radops.gcp.autostop import Autostop
    from radops.gcp.watcher import WatcherStatus
    from radops.progress import ProgressCallback
    from radops.specs import GCPExecutorSpec


class AutostopRefused(RadopsError):
    """The VM's watcher would not arm (no known action there): waiting will not change it."""


class WatcherControl:
    """The autostop watcher on the VM of one GCP executor."""

    def __init__(self, spec: GCPExecutorSpec) -> None:
        self.spec = spec

    def _executor(self) -> SSHExecutor:
        from radops.gcp.login import vm_executor

        # Looking at (or setting up) the watcher is not use of the VM: no activity mark.
        return vm_executor(self.spec)

    def arm(self, autostop: Autostop, executor: SSHExecutor | None = None) -> str:
        """Install the watcher with this setting and start it (the idle clock restarts);
        return how it runs (`systemd` or `process`). Uses `executor`'s connection if given."""
        settings = watcher.WatcherSettings(
            idle_seconds=autostop.seconds,
            action=autostop.action,
            project=self.spec.project,
            zone=self.spec.zone,
            instance=self.spec.instance,
            docker=self.spec.docker_path,
        )
        out = self._run(watcher.arm_argv(settings), executor, "arming autostop")
        for line in out.splitlines():
            if line.startswith("radops:armed "):
                return line.split()[1]
            if line.startswith("radops:refused "):
                raise AutostopRefused(
                    f"autostop on {self.spec.name} refused to arm: {line.split(' ', 1)[1]}"
                )
        raise RadopsError(f"arming autostop on {self.spec.name} failed: {out.strip()[-200:]}")

    def arm_when_reachable(
        self, autostop: Autostop, timeout: float, progress: ProgressCallback
    ) -> str:
        """`arm`, retried while SSH is not up yet (a VM that just started), within `timeout`."""
        found: list[str] = []
        last: list[RadopsError] = []

        def attempt() -> bool:
            try:
                found[:] = [self.arm(autostop)]
            except AutostopRefused:
                raise
            except RadopsError as e:
                if not last:
                    progress(f"Waiting for SSH on {self.spec.ssh.hostname} to arm autostop")
                last[:] = [e]
                return False
            return True

        if not poll(attempt, timeout, interval=2.0):
            reason = f": {last[0].message}" if last else ""
            raise RadopsError(
                f"could not arm autostop on {self.spec.name} within {timeout:.0f}s{reason}",
                f"Try again: radops executors gcp autostop {self.spec.name} "
                f"{autostop.text().split()[0]}",
            )
        return found[0]

    def disarm(self) -> None:
        self._run(watcher.disarm_argv(), None, "turning autostop off")

    def status(self) -> WatcherStatus:
        return watcher.parse_status(self._run(watcher.status_argv(), None, "reading autostop"))

    def _run(self, argv: list[str], executor: SSHExecutor | None, what: str) -> str:
        own = executor is None
        ex = executor or self._executor()
        try:
            status, out, err = ex.conn.run(argv)
        finally:
            if own:
                ex.close()
        text = out.decode(errors="replace")
        if status not in (0, 3):
            detail = (err.decode(errors="replace").strip() or text.strip())[-200:]
            raise RadopsError(f"{what} on {self.spec.name} failed (exit {status}): {detail}")
        return text
