"""The job's batch script (docker, podman or pyxis on each node) and sbatch's options: pure text.

radops writes the batch script whole, so each value in it is quoted once (`shlex.quote`). The
job's `-e` values are never in it: they are in the job folder's `env` file (0600), which the
script removes on every way out it lives to see (its end, `scancel`, the time limit).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

DEFAULT_STOP_TIMEOUT = 10  # seconds between the container's SIGTERM and SIGKILL on `scancel`
MASTER_PORT_BASE = 20000

# Waits for a background process even when a trapped signal interrupts `wait`; its exit status.
_REAP = 'reap() { while :; do wait "$1"; s=$?; kill -0 "$1" 2>/dev/null || return $s; done; }\n'
# The env file holds the job's secrets: gone when the script ends, however it ends (a signal is
# trapped, so the shell reaches its exit). A cancel before the job started is radops' stop/rm's.
_FORGET_ENV = "trap 'rm -f \"$dir/env\"' EXIT\n"
_STARTED = (
    'printf "%s %s\\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SLURM_JOB_NODELIST:-?}" '
    '>"$dir/started"\n'
)
_RECORD = (
    'rm -f "$dir/env"\n'
    'printf "%s %s %s\\n" "$s" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SLURMD_NODENAME:-?}" '
    '>"$dir/record.tmp" && mv -f "$dir/record.tmp" "$dir/record"\n'
    'exit "$s"\n'
)


@dataclass(frozen=True)
class BatchJob:
    """Everything the batch script needs, already checked."""

    job_id: str
    folder: str  # JOB_DIR/<job id>
    runtime: str  # docker, podman or pyxis
    runtime_path: str  # its CLI on the compute nodes (pyxis: srun)
    image: str  # as the nodes pull it: REGISTRY/radops/NAME:TAG
    run_args: list[str]  # the container runtime's options: labels, -v, --shm-size, ...
    command: list[str]
    nodes: int = 1
    has_env: bool = False
    host_network: bool = False  # several nodes and no --network given: they must reach each other


def batch_script(job: BatchJob) -> str:
    """The job's batch script: one container per node, stopped when Slurm ends the job."""
    if job.runtime == "pyxis":
        return _pyxis_script(job)
    q = shlex.quote
    rt = job.runtime
    gpus = (
        '  if [ -e /dev/nvidiactl ]; then set -- --gpus "\\"device=$SLURM_JOB_GPUS\\"" "$@"; fi\n'
        if rt == "docker"
        else '  for g in $(printf %s "$SLURM_JOB_GPUS" | tr , " "); do '
        'set -- --device "nvidia.com/gpu=$g" "$@"; done\n'
    )
    network = '    set -- --network host "$@"\n' if job.host_network else ""
    command = " ".join(q(a) for a in [job.image, *job.command])
    return (
        "#!/bin/sh\n"
        f"# radops job {job.job_id}, written by radops: one {rt} container per node.\n"
        f"dir={q(job.folder)}\nrt={q(job.runtime_path)}\nimage={q(job.image)}\n"
        f"nodes={job.nodes}\n"
        "# Docker and podman re-parent the container, so Slurm's signals never reach it: every\n"
        "# wait is in the background, and TERM stops the container itself.\n"
        + _REAP
        + 'grace() { cat "$dir/stop-timeout" 2>/dev/null || echo '
        + str(DEFAULT_STOP_TIMEOUT)
        + "; }\n"
        "# Stops the container again each second: one that the runtime was still creating when\n"
        "# SIGTERM came is stopped too once it exists.\n"
        'stopper() { i=0; while [ "$i" -lt 30 ]; do "$rt" stop --time "$(grace)" "$name" '
        ">/dev/null 2>&1; sleep 1; i=$((i + 1)); done; }\n"
        "task() {\n"
        "  rank=${SLURM_NODEID:-0} name=radops-" + job.job_id + " stopping= stopper=\n"
        '  [ "$nodes" -gt 1 ] && name="$name-$rank"\n'
        "  trap 'stopping=1; [ -n \"$stopper\" ] || { stopper & stopper=$!; }' TERM INT HUP\n"
        '  "$rt" pull -q "$image" >/dev/null & reap $! || { s=$?; '
        'echo "radops: cannot pull $image on ${SLURMD_NODENAME:-this node}" >&2; return $s; }\n'
        '  [ -n "$stopping" ] && return 143\n'
        f"  set -- {' '.join(q(a) for a in job.run_args)}\n"
        + ('  set -- --env-file "$dir/env" "$@"\n' if job.has_env else "")
        + '  if [ -n "${SLURM_JOB_GPUS:-}" ]; then\n'
        '  set -- -e "RADOPS_SLURM_GPUS=$SLURM_JOB_GPUS" "$@"\n' + gpus + "  fi\n"
        '  if [ "$nodes" -gt 1 ]; then\n'
        + network
        + '    set -- -e "MASTER_ADDR=$RADOPS_MASTER_ADDR" -e "MASTER_PORT=$RADOPS_MASTER_PORT" '
        '-e "NNODES=$nodes" -e "WORLD_SIZE=$nodes" -e "NODE_RANK=$rank" '
        '-e "SLURM_PROCID=${SLURM_PROCID:-$rank}" "$@"\n'
        "  fi\n"
        f'  "$rt" run --init --name "$name" "$@" {command} &\n'
        "  reap $!; s=$?\n"
        '  if [ -n "$stopping" ]; then "$rt" stop --time "$(grace)" "$name" >/dev/null 2>&1; '
        'kill "$stopper" 2>/dev/null; fi\n'
        "  # The container's own exit code: the CLI's may be its own (podman ends on SIGTERM).\n"
        '  c=$("$rt" inspect --format "{{.State.Status}} {{.State.ExitCode}}" "$name" '
        '2>/dev/null) && case "$c" in exited*) s=${c#* };; esac\n'
        '  "$rt" rm --force "$name" >/dev/null 2>&1\n'
        "  return $s\n"
        "}\n"
        'if [ "${1:-}" = --task ]; then task; exit $?; fi\n' + _BATCH_MAIN
    )


# The batch step: note the start, run the task here (one node) or on every node (srun), then
# write the record. MASTER_ADDR is the first node's address as Slurm knows it (NodeAddr).
_BATCH_MAIN = (
    "trap : TERM INT HUP\n" + _FORGET_ENV + _STARTED + 'if [ "$nodes" -gt 1 ]; then\n'
    '  first=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
    '  RADOPS_MASTER_ADDR=$(scontrol show node -o "$first" | '
    "sed -n 's/.*NodeAddr=\\([^ ]*\\).*/\\1/p')\n"
    f"  RADOPS_MASTER_PORT=$(( {MASTER_PORT_BASE} + ${{SLURM_JOB_ID:-0}} % 20000 ))\n"
    "  export RADOPS_MASTER_ADDR RADOPS_MASTER_PORT\n"
    '  srun --ntasks-per-node=1 --kill-on-bad-exit=1 /bin/sh "$dir/job.sh" --task & reap $!\n'
    "  s=$?\n"
    "else\n"
    "  task; s=$?\n"
    "fi\n" + _RECORD
)


def _pyxis_script(job: BatchJob) -> str:
    """pyxis/enroot: `srun --container-image` runs the image on each node itself, and Slurm
    signals that step itself. Not run against a real pyxis in radops' tests (a stand-in
    `srun` runs it)."""
    q = shlex.quote
    # pyxis wants REGISTRY#PATH: the first `/` after the registry host becomes `#`.
    host, _, path = job.image.partition("/")
    image = f"{host}#{path}" if "." in host or ":" in host or host == "localhost" else job.image
    srun = ["--ntasks-per-node=1", f"--container-image={image}", "--no-container-mount-home",
            "--container-remap-root"]  # fmt: skip
    if job.run_args:
        srun.append("--container-mounts=" + ",".join(_pyxis_mounts(job.run_args)))
    env = 'while IFS= read -r line; do export "$line"; done <"$dir/env"; ' if job.has_env else ""
    return (
        "#!/bin/sh\n"
        f"# radops job {job.job_id}, written by radops: pyxis runs the image on each node.\n"
        f"dir={q(job.folder)}\n"
        # Slurm's TERM (scancel, the time limit) reaches the step itself; the shell outlives it
        # to remove the env file and write the record.
        + _REAP
        + "trap : TERM INT HUP\n"
        + _FORGET_ENV
        + _STARTED
        + "if srun=$(command -v srun); then\n"
        # The -e values go into srun's environment only, which the step inherits: a subshell
        # exports them and execs srun by the path found above, so `-e PATH=...` changes neither
        # which srun runs nor the commands of this shell. Positional arguments, unlike shell
        # variables, cannot be overridden by an -e value.
        f'  ( set -- "$srun" {" ".join(q(a) for a in [*srun, *job.command])}; '
        + env
        + 'exec "$@" ) &\n'
        "  reap $!; s=$?\n"
        'else echo "radops: no srun on ${SLURMD_NODENAME:-this node}" >&2; s=127; fi\n' + _RECORD
    )


def _pyxis_mounts(run_args: list[str]) -> list[str]:
    """The `-v SRC:DST[:ro]` among the runtime options, as pyxis' --container-mounts."""
    return [run_args[i + 1] for i, a in enumerate(run_args[:-1]) if a in ("-v", "--volume")]


def sbatch_args(
    job_id: str,
    folder: str,
    *,
    nodes: int | None,
    gres: str | None,
    time: str | None,
    cpus: int | None,
    memory: str | None,
    partition: str | None,
    account: str | None,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """sbatch's options for a job; `extra` (--slurm-arg) last, so it can override."""
    args = ["--parsable", f"--job-name=radops-{job_id}", f"--output={folder}/stdout",
            f"--error={folder}/stderr", f"--chdir={folder}", "--ntasks-per-node=1"]  # fmt: skip
    for flag, value in (
        ("--nodes", nodes), ("--gres", gres), ("--time", time), ("--cpus-per-task", cpus),
        ("--mem", memory), ("--partition", partition), ("--account", account),
    ):  # fmt: skip
        if value is not None:
            args.append(f"{flag}={value}")
    return [*args, *extra]


def gres_for(gpus: str) -> str:
    """`--gpus N` or `TYPE:N` as Slurm's GRES request (per node); ValueError when it is not."""
    kind, colon, count = gpus.rpartition(":")
    bad_kind = bool(colon) and not kind.replace("-", "").replace("_", "").isalnum()
    if not count.isdigit() or int(count) < 1 or bad_kind:
        raise ValueError(gpus)
    return f"gpu:{kind}:{count}" if kind else f"gpu:{count}"
