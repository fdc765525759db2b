"""GPU placement on a machine reached over SSH: one round trip reads its GPUs and jobs, radops
chooses here (radops.executors.docker.gpus), and the run script there takes the machine's GPU
lock (flock(1) on GPU_LOCK, the file every user's radops locks), checks the chosen GPUs are still
free and starts the job before letting go. A run that lost the race is told so and chooses again.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any

from radops.executors.docker.argv import parse_ps, ps_argv
from radops.executors.docker.gpus import (
    APPS_QUERY,
    GPU_LIST_QUERY,
    GPU_LOCK,
    GpuState,
    Placement,
    parse_apps,
    parse_inventory,
)
from radops.executors.docker.labels import job_from_summary
from radops.executors.model import LABEL_GPUS

if TYPE_CHECKING:
    from radops.executors.ssh.docker import RemoteDocker

# The machine's GPUs, the GPUs processes use, then its radops jobs (`docker ps` rows).
STATE_SCRIPT = (
    f'g=$({shlex.join(GPU_LIST_QUERY)} </dev/null 2>/dev/null) || g=; printf "%s\\n" "$g"; '
    f"echo radops:apps; {shlex.join(APPS_QUERY)} </dev/null 2>/dev/null; "
    'echo radops:jobs; exec "$@"'
)

# The run (the whole argv left) under the machine's GPU lock, once the GPUs it was given ($3,
# `2,3`; empty when the user named them) are still held by no running radops job and ($4, their
# UUIDs) used by no process. Else a `radops:gpus-taken` line on stderr and docker run's status
# for a refusal, 125. The lock (fd 9) passes to `docker run` and goes when it has started the job.
GUARD_SCRIPT = (
    "d=$1 lock=$2 want=$3 uuids=$4 l=$5; shift 5; "
    "command -v flock >/dev/null 2>&1 || "
    '{ echo "radops:gpus-error flock(1) is not installed there (util-linux)" >&2; exit 125; }; '
    # Never through a link another user planted: made with noclobber (O_EXCL), used only as a
    # regular file.
    '[ -e "$lock" ] || [ -L "$lock" ] || (umask 0; set -C; : >"$lock") 2>/dev/null; '
    '{ [ -f "$lock" ] && [ ! -L "$lock" ]; } || '
    '{ echo "radops:gpus-error the GPU lock $lock is not a regular file (remove it)" >&2; '
    "exit 125; }; "
    'exec 9<"$lock" && flock -w 120 9 || '
    '{ echo "radops:gpus-error cannot take the GPU lock $lock" >&2; exit 125; }; '
    'if [ -n "$want" ]; then held=$("$d" ps --filter "label=$l" --format "{{.Label \\"$l\\"}}" '
    "</dev/null) || exit $?; "
    f"used=$({shlex.join(APPS_QUERY)} </dev/null 2>/dev/null); "
    'for g in $(printf "%s\\n" "$held" | tr "," " "); do case ",$want," in *",$g,"*) '
    'echo "radops:gpus-taken $g" >&2; exit 125;; esac; done; '
    'for u in $(printf "%s\\n" "$uuids" | tr "," " "); do case "$used" in *"$u"*) '
    'echo "radops:gpus-taken $u" >&2; exit 125;; esac; done; fi; exec "$@"'
)
_TAKEN = re.compile(rb"^radops:gpus-taken ", re.M)
_ERROR = re.compile(rb"^radops:gpus-error (.*)$", re.M)


def remote_gpu_state(docker: RemoteDocker, executor: str) -> GpuState | None:
    """The machine's GPUs and who uses them; None without nvidia-smi there."""
    argv = ["sh", "-c", STATE_SCRIPT, "radops-gpus", *ps_argv(docker.path)]
    out = docker.run_script(argv, "reading the GPUs").decode(errors="replace")
    gpu_part, _, rest = out.partition("radops:apps\n")
    apps, _, ps = rest.partition("radops:jobs\n")
    gpus = parse_inventory(gpu_part)
    if not gpus:
        return None
    jobs = [job_from_summary(row, executor) for row in parse_ps(ps.encode())]
    return GpuState(gpus, jobs, parse_apps(apps))


def guard_argv(
    docker: str, request: dict[str, Any], placement: Placement | None, run: list[str]
) -> list[str]:
    """`run` under the machine's GPU lock, refused if the placed GPUs were taken meanwhile."""
    want = uuids = ""  # devices the user named run whatever holds them
    if placement is not None and not request["DeviceIDs"]:
        want = ",".join(str(g.index) for g in placement.devices)
        uuids = ",".join(g.uuid for g in placement.devices)
    return ["sh", "-c", GUARD_SCRIPT, "radops-gpus", docker, GPU_LOCK, want, uuids, LABEL_GPUS,
            *run]  # fmt: skip


def gpus_taken(stderr: bytes) -> bool:
    """The guard refused: another run took a chosen GPU after radops looked."""
    return _TAKEN.search(stderr) is not None


def guard_error(stderr: bytes) -> str | None:
    found = _ERROR.search(stderr)
    return found[1].decode(errors="replace") if found else None
