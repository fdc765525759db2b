"""GPU placement on this machine: its lock and what nvidia-smi says here."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator

from radops.errors import RadopsError
from radops.executors.docker.gpus import (
    APPS_QUERY,
    GPU_LIST_QUERY,
    GPU_LOCK,
    GpuState,
    parse_apps,
    parse_inventory,
)
from radops.executors.model import Job

LOCK_WAIT_S = 120


def _open_lock(path: str) -> int:
    """The lock file, read-only, made (mode 0666, for every user's radops) if missing; never
    through a symbolic link."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        with contextlib.suppress(FileExistsError):
            made = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o666)
            try:
                os.fchmod(made, 0o666)  # past the umask
            finally:
                os.close(made)
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)


@contextlib.contextmanager
def machine_gpu_lock(path: str = GPU_LOCK) -> Iterator[None]:
    """The machine's GPU lock (the one the SSH kind takes there with flock(1)), held while a
    run chooses its GPUs and starts. Released by the kernel if this process dies."""
    import fcntl
    import time

    try:
        fd = _open_lock(path)
    except OSError as e:  # a link planted there too (O_NOFOLLOW: ELOOP)
        raise RadopsError(
            f"cannot open the GPU lock {path}: {e.strerror}",
            "It must be a regular file; remove it if it is a link.",
        ) from e
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RadopsError(f"another radops held the GPU lock {path} for "
                                      f"{LOCK_WAIT_S}s") from None  # fmt: skip
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def nvidia_smi(argv: list[str]) -> str | None:
    """What an nvidia-smi query printed here; None if it is missing or failed."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def local_gpu_state(jobs: Callable[[], list[Job]]) -> GpuState | None:
    """This machine's GPUs and who uses them; None without nvidia-smi (no NVIDIA driver)."""
    listed = nvidia_smi(GPU_LIST_QUERY)
    gpus = parse_inventory(listed) if listed is not None else []
    if not gpus:
        return None
    return GpuState(gpus, jobs(), parse_apps(nvidia_smi(APPS_QUERY) or ""))


def local_gpu_names() -> list[str]:
    """GPU names from nvidia-smi on this machine; none if it is missing or fails."""
    out = nvidia_smi(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    return [line.strip() for line in (out or "").splitlines() if line.strip()]
