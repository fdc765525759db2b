"""Starting a job on an SSH executor's engine: its `docker run` behind the --name check and, with
--gpus, behind the machine's GPU lock (ssh/gpus.py), shipping the image if the engine lacks it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from radops.errors import RadopsError
from radops.executors.docker import argv as argv_for
from radops.executors.docker.gpus import GpusBusy, docker_gpus_value, place, sharing_notice
from radops.executors.docker.labels import job_from_labels, job_labels
from radops.executors.model import Job, JobRequest, container_name, name_taken
from radops.executors.ssh import scripts
from radops.executors.ssh.gpus import gpus_taken, guard_argv, guard_error, remote_gpu_state

if TYPE_CHECKING:
    from radops.executors.ssh.docker import RemoteDocker
    from radops.executors.ssh.shipping import Shipping
    from radops.images.service import ImagePlan
    from radops.progress import ProgressCallback

GPU_TRIES = 8  # runs started at the same moment: each loses the GPU race at most this often


def start_job(
    docker: RemoteDocker,
    notify: Callable[[str], None] | None,
    job_id: str,
    request: JobRequest,
    gpus: dict[str, Any] | None,
    plan: ImagePlan,
    shipping: Shipping,
    progress: ProgressCallback,
) -> Job:
    """Start the job; with GPUs, on GPUs chosen here and checked there under its lock
    (chosen again if another run took one meanwhile)."""
    image = shipping.remote_ref(plan.tag)
    fresh = request.build.no_cache  # ships the image again: once, not on each GPU try
    for _ in range(GPU_TRIES):
        placement = None
        if gpus is not None and (state := remote_gpu_state(docker, docker.executor)):
            placement = place(request.gpus or "", gpus, state, docker.executor)
            if notice := sharing_notice(placement):
                (notify or progress)(notice)
        labels = job_labels(job_id, docker.executor, image, request, placement)
        value = docker_gpus_value(gpus, placement, request.gpus or "") if gpus else None
        argv = argv_for.run_argv(
            docker.path, container_name(job_id), labels, image, request.command,
            value, env_from_stdin=bool(request.env), options=request.options,
        )  # fmt: skip
        if gpus is not None and placement is not None:  # (none: no nvidia-smi, docker decides)
            argv = guard_argv(docker.path, gpus, placement, argv)
        argv = scripts.name_guard_argv(docker.path, request.name, argv)
        env = argv_for.env_file(request.env)
        status, err = shipping.run(plan, argv, env, fresh, progress)
        fresh = False
        if not gpus_taken(err):
            break
    if status != 0 and request.name and (taken := scripts.name_taken(err)) is not None:
        raise name_taken(request.name, taken, docker.executor)  # no container was made
    if status != 0 and gpus_taken(err):  # lost every race: busy, so --wait goes on waiting
        raise GpusBusy(
            f"--gpus on {docker.executor}: other runs took the chosen GPUs {GPU_TRIES} times",
            "Try again, or add --wait.",
            "GPUs taken by runs started at the same moment",
        )
    if status != 0 and (why := guard_error(err)):
        raise RadopsError(f"--gpus on {docker.executor}: {why}")
    if status != 0:
        # docker leaves a Created container when the start fails: a job that never ran
        # must not show up in `jobs`.
        docker.run_argv(docker.argv("rm", "--force", container_name(job_id)))
        raise docker.error(status, err, "starting the job")
    progress(f"Started job {job_id} on {docker.executor}")
    return job_from_labels(labels, docker.executor, "running")
