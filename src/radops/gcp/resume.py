"""After `gcp start`: which jobs came back. A preempted or stopped VM took its jobs down; docker
starts the ones whose restart policy is `unless-stopped` or `always` when its engine starts
with the VM (docker.service is enabled at boot on the images radops' templates use), on the
GPUs they had. radops starts nothing itself: it says what docker did."""

from __future__ import annotations

from typing import TYPE_CHECKING

from radops.errors import RadopsError
from radops.gcp.waiting import poll_for

if TYPE_CHECKING:
    from radops.executors.model import Job
    from radops.progress import ProgressCallback
    from radops.specs import GCPExecutorSpec

COMES_BACK = ("unless-stopped", "always")
WAIT_S = 60.0


def report_jobs_back(spec: GCPExecutorSpec, timeout: float, progress: ProgressCallback) -> None:
    """Say which of the VM's jobs came back, and which with a policy did not (yet)."""
    from radops.gcp.login import vm_executor

    last: list[RadopsError] = []

    def listed() -> list[Job] | None:
        try:
            with vm_executor(spec) as executor:
                return executor.jobs()
        except RadopsError as e:
            last[:] = [e]
            return None

    jobs = poll_for(listed, min(timeout, WAIT_S), interval=2.0)
    if jobs is None:
        reason = last[0].message if last else "no answer"
        progress(f"Could not list the jobs of {spec.name} yet ({reason})")
        return
    for job in jobs:
        if job.restart_policy not in COMES_BACK:
            continue
        name = f" ({job.name})" if job.name else ""
        gpus = f" on GPU {','.join(str(g.index) for g in job.gpus)}" if job.gpus else ""
        if job.status in ("running", "restarting"):
            progress(f"Job {job.id}{name} is back{gpus} (--restart {job.restart_policy})")
        else:
            policy = job.restart_policy
            progress(f"Job {job.id}{name} is {job.status}, not back (--restart {policy}): is "
                     f"docker.service enabled on {spec.name}?")  # fmt: skip
