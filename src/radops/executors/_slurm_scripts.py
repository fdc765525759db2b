"""What the Slurm executor runs: the job's batch script, and the `sh` scripts on the login node
(submit, list, wait, logs, stop), written and parsed here, in one module. Pure text: no I/O.

Every value reaches a script as its own argument or as stdin, never spliced into the script's
text, except in the batch script, which radops writes whole: there each value is quoted once
(`shlex.quote`). A job's folder on the shared storage, JOB_DIR/<job id>, holds:

    job.json    the job's radops labels and what was asked of Slurm (written at submit)
    env         its -e values (0600), read by the container runtime; removed when it ends
    job.sh      the batch script; slurm-id: Slurm's job id
    stdout, stderr   the job's output (sbatch --output/--error)
    started     written when the job starts; record: `EXIT_CODE ENDED_AT NODE` when it ends,
                so a job keeps its end state after squeue forgets it (no accounting needed)
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from radops.executors.model import Stream

# Slurm states in which a job has not ended (squeue %T).
ACTIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED",
    "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "STOPPED",
})  # fmt: skip
SQUEUE_FORMAT = "%i|%T|%r|%N"
DEFAULT_STOP_TIMEOUT = 10  # seconds between the container's SIGTERM and SIGKILL on `scancel`
MASTER_PORT_BASE = 20000


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
        'reap() { while :; do wait "$1"; s=$?; kill -0 "$1" 2>/dev/null || return $s; done; }\n'
        'grace() { cat "$dir/stop-timeout" 2>/dev/null || echo '
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
    "trap : TERM INT HUP\n"
    'printf "%s %s\\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SLURM_JOB_NODELIST:-?}" '
    '>"$dir/started"\n'
    'if [ "$nodes" -gt 1 ]; then\n'
    '  first=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
    '  RADOPS_MASTER_ADDR=$(scontrol show node -o "$first" | '
    "sed -n 's/.*NodeAddr=\\([^ ]*\\).*/\\1/p')\n"
    f"  RADOPS_MASTER_PORT=$(( {MASTER_PORT_BASE} + ${{SLURM_JOB_ID:-0}} % 20000 ))\n"
    "  export RADOPS_MASTER_ADDR RADOPS_MASTER_PORT\n"
    '  srun --ntasks-per-node=1 --kill-on-bad-exit=1 /bin/sh "$dir/job.sh" --task & reap $!\n'
    "  s=$?\n"
    "else\n"
    "  task; s=$?\n"
    "fi\n"
    'rm -f "$dir/env"\n'
    'printf "%s %s %s\\n" "$s" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SLURMD_NODENAME:-?}" '
    '>"$dir/record.tmp" && mv -f "$dir/record.tmp" "$dir/record"\n'
    'exit "$s"\n'
)


def _pyxis_script(job: BatchJob) -> str:
    """pyxis/enroot: `srun --container-image` runs the image on each node itself (and Slurm
    stops it), so no trap is needed. Not run against a real pyxis in radops' tests."""
    q = shlex.quote
    # pyxis wants REGISTRY#PATH: the first `/` after the registry host becomes `#`.
    host, _, path = job.image.partition("/")
    image = f"{host}#{path}" if "." in host or ":" in host or host == "localhost" else job.image
    srun = ["srun", "--ntasks-per-node=1", f"--container-image={image}",
            "--no-container-mount-home", "--container-remap-root"]  # fmt: skip
    if job.run_args:
        srun.append("--container-mounts=" + ",".join(_pyxis_mounts(job.run_args)))
    env = 'while IFS= read -r line; do export "$line"; done <"$dir/env"\n' if job.has_env else ""
    return (
        "#!/bin/sh\n"
        f"# radops job {job.job_id}, written by radops: pyxis runs the image on each node.\n"
        f"dir={q(job.folder)}\n"
        'printf "%s %s\\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SLURM_JOB_NODELIST:-?}" '
        '>"$dir/started"\n' + env + f"{' '.join(q(a) for a in [*srun, *job.command])}\n"
        "s=$?\n"
        'rm -f "$dir/env"\n'
        'printf "%s %s %s\\n" "$s" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SLURMD_NODENAME:-?}" '
        '>"$dir/record.tmp" && mv -f "$dir/record.tmp" "$dir/record"\n'
        'exit "$s"\n'
    )


def _pyxis_mounts(run_args: list[str]) -> list[str]:
    """The `-v SRC:DST[:ro]` among the runtime options, as pyxis' --container-mounts."""
    return [run_args[i + 1] for i, a in enumerate(run_args[:-1]) if a in ("-v", "--volume")]


# submit: stdin is two lines (the env file and job.json, each in base64), then the batch
# script; they go into the job's folder (0700, files 0600), then sbatch. The header line says
# what sbatch said: `radops:ok` and Slurm's job id, or `radops:error STATUS` and its message.
SUBMIT_SCRIPT = (
    'd=$1; shift; umask 077; mkdir -p "$d" || exit 1; IFS= read -r env; IFS= read -r meta; '
    'if [ -n "$env" ]; then printf %s "$env" | base64 -d >"$d/env" || exit 1; fi; '
    'printf %s "$meta" | base64 -d >"$d/job.json" && cat >"$d/job.sh" || exit 1; '
    'out=$(sbatch "$@" "$d/job.sh" 2>&1 </dev/null); status=$?; '
    'if [ "$status" -eq 0 ]; then printf "%s\\n" "$out" >"$d/slurm-id"; '
    'printf "radops:ok\\n%s\\n" "$out"; exit 0; fi; '
    'rm -rf "$d"; printf "radops:error %d\\n%s\\n" "$status" "$out"'
)


def submit_argv(folder: str, sbatch_args: list[str]) -> list[str]:
    return ["sh", "-c", SUBMIT_SCRIPT, "radops-submit", folder, *sbatch_args]


def submit_stdin(env: bytes, meta: dict[str, Any], script: str) -> bytes:
    """What the submit script reads: nothing secret on a command line."""
    meta_line = base64.b64encode(json.dumps(meta).encode())
    return base64.b64encode(env) + b"\n" + meta_line + b"\n" + script.encode()


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


# list: every job folder's job.json, slurm-id, started and record, then squeue's view of this
# user's jobs (its exit status first: squeue fails when the controller or munge is down).
JOBS_SCRIPT = (
    'd=$1; if cd "$d" 2>/dev/null; then for j in */job.json; do [ -f "$j" ] || continue; '
    'id=${j%/job.json}; printf "radops:job %s\\n" "$id"; tr -d "\\n" <"$j"; echo; '
    'for f in slurm-id started record; do [ -f "$id/$f" ] && '
    'printf "radops:%s %s\\n" "$f" "$(cat "$id/$f")"; done; done; fi; '
    f'out=$(squeue -h -t all --me -o "{SQUEUE_FORMAT}" 2>&1); '
    'printf "radops:squeue %d\\n%s\\n" "$?" "$out"'
)


def jobs_argv(job_dir: str) -> list[str]:
    return ["sh", "-c", JOBS_SCRIPT, "radops-jobs", job_dir]


# `state SLURM_ID`: the job's squeue state, or `gone` once squeue no longer knows it; any other
# squeue failure ends the script with `radops:error`.
_STATE_FN = (
    'state() { st=$(squeue -h -t all -j "$1" -o "%T %r" 2>&1); '
    'if [ $? -ne 0 ]; then case "$st" in *"Invalid job id"*) st=gone;; *) '
    'printf "radops:error 1\\n%s\\n" "$st"; exit 0;; esac; fi; [ -n "$st" ] || st=gone; }; '
    'active() { case "${st%% *}" in '
    + "|".join(sorted(ACTIVE_STATES))
    + ") return 0;; esac; return 1; }; "
)

# wait: until the record is written or the job left squeue (cancelled before it started).
WAIT_SCRIPT = (
    "d=$1 sid=$2; "
    + _STATE_FN
    + 'while [ ! -f "$d/record" ]; do state "$sid"; active || break; sleep 1; done; '
    'if [ -f "$d/record" ]; then printf "radops:ok\\n%s\\n" "$(cat "$d/record")"; '
    'else printf "radops:ok\\nended %s\\n" "$st"; fi'
)


def wait_argv(folder: str, slurm_id: str) -> list[str]:
    return ["sh", "-c", WAIT_SCRIPT, "radops-wait", folder, slurm_id]


# logs: with follow, wait while the job is pending (a `radops:wait STATE REASON` line each time
# that changes), then `radops:ok` and the output; stdout to stdout, stderr to stderr. Following
# reads what each file gained since the last look until the job has ended, then once more.
LOGS_SCRIPT = (
    "d=$1 sid=$2 follow=$3 tail=$4; "
    + _STATE_FN
    + 'last=; if [ "$follow" = 1 ]; then while [ ! -f "$d/started" ] && [ ! -f "$d/record" ]; '
    'do state "$sid"; case "$st" in PENDING*|CONFIGURING*) ;; *) break;; esac; '
    '[ "$st" = "$last" ] || printf "radops:wait %s\\n" "$st"; last=$st; sleep 2; done; fi; '
    'printf "radops:ok\\n"; '
    'if [ "$follow" != 1 ]; then if [ -n "$tail" ]; then '
    'tail -n "$tail" "$d/stdout" 2>/dev/null; tail -n "$tail" "$d/stderr" >&2 2>/dev/null; '
    'else cat "$d/stdout" 2>/dev/null; cat "$d/stderr" >&2 2>/dev/null; fi; exit 0; fi; '
    'size() { wc -c <"$1" 2>/dev/null || echo 0; }; '
    'o=0 e=0 n=0; if [ -n "$tail" ]; then '
    'o=$(( $(size "$d/stdout") - $(tail -n "$tail" "$d/stdout" 2>/dev/null | wc -c) )); '
    'e=$(( $(size "$d/stderr") - $(tail -n "$tail" "$d/stderr" 2>/dev/null | wc -c) )); fi; '
    'while :; do done=; [ -f "$d/record" ] && done=1; '
    'if [ -z "$done" ] && [ $((n % 6)) -eq 5 ]; then state "$sid"; active || done=1; fi; '
    'n=$((n + 1)); s=$(size "$d/stdout"); if [ "$s" -gt "$o" ]; then '
    'tail -c +$((o + 1)) "$d/stdout" | head -c $((s - o)); o=$s; fi; '
    's=$(size "$d/stderr"); if [ "$s" -gt "$e" ]; then '
    'tail -c +$((e + 1)) "$d/stderr" | head -c $((s - e)) >&2; e=$s; fi; '
    '[ -n "$done" ] && exit 0; sleep 0.5; done'
)


def logs_argv(folder: str, slurm_id: str, follow: bool, tail: int | None) -> list[str]:
    return ["sh", "-c", LOGS_SCRIPT, "radops-logs", folder, slurm_id,
            "1" if follow else "0", "" if tail is None else str(tail)]  # fmt: skip


# stop: tell the job's trap how long to give the container, scancel it if it has not ended,
# and wait (bounded) until it has. The header's rest: `true` if it was queued or running.
STOP_SCRIPT = (
    "d=$1 sid=$2 t=$3 limit=$4; "
    + _STATE_FN
    + 'printf "%s\\n" "$t" >"$d/stop-timeout"; was=false; '
    'if [ ! -f "$d/record" ]; then state "$sid"; if active; then was=true; '
    'out=$(scancel "$sid" 2>&1) || { printf "radops:error 1\\n%s\\n" "$out"; exit 0; }; '
    'i=0; while [ ! -f "$d/record" ] && [ "$i" -lt "$limit" ]; do state "$sid"; '
    "active || break; sleep 1; i=$((i + 1)); done; fi; fi; "
    'printf "radops:ok\\n%s\\n" "$was"'
)


def stop_argv(folder: str, slurm_id: str, timeout: int, limit: int) -> list[str]:
    return ["sh", "-c", STOP_SCRIPT, "radops-stop", folder, slurm_id, str(timeout), str(limit)]


# remove: scancel (if asked) and wait for the end, then the job's folder goes.
REMOVE_SCRIPT = (
    "d=$1 sid=$2 cancel=$3 limit=$4; "
    + _STATE_FN
    + 'if [ "$cancel" = 1 ] && [ ! -f "$d/record" ]; then state "$sid"; if active; then '
    'echo 0 >"$d/stop-timeout"; scancel "$sid" >/dev/null 2>&1; i=0; '
    'while [ ! -f "$d/record" ] && [ "$i" -lt "$limit" ]; do state "$sid"; active || break; '
    "sleep 1; i=$((i + 1)); done; fi; fi; "
    'rm -rf "$d" && printf "radops:ok\\n"'
)


def remove_argv(folder: str, slurm_id: str, cancel: bool, limit: int) -> list[str]:
    return ["sh", "-c", REMOVE_SCRIPT, "radops-rm", folder, slurm_id,
            "1" if cancel else "0", str(limit)]  # fmt: skip


# check: Slurm's version, the partitions (name, state, nodes, GRES), the login node's platform,
# and which container runtimes the login node has (the nodes are assumed alike).
CHECK_SCRIPT = (
    'printf "radops:version %s\\n" "$(sinfo --version 2>&1)"; '
    'out=$(sinfo -h -o "%R|%a|%D|%G|%c" 2>&1); printf "radops:sinfo %d\\n%s\\n" "$?" "$out"; '
    'printf "radops:uname %s\\n" "$(uname -sm)"; '
    'for r in "$@"; do p=$(command -v "$r" 2>/dev/null) && printf "radops:has %s %s\\n" "$r" "$p"; '
    "done; srun --help 2>/dev/null | grep -q -- --container-image && "
    'printf "radops:has pyxis srun\\n"; exit 0'
)


def check_argv(runtimes: list[str]) -> list[str]:
    return ["sh", "-c", CHECK_SCRIPT, "radops-check", *runtimes]


@dataclass
class FolderEntry:
    """One job folder as the list script printed it."""

    job_id: str
    meta: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)  # slurm-id, started, record


@dataclass(frozen=True)
class QueueRow:
    slurm_id: str
    state: str
    reason: str
    nodes: str


def parse_jobs(out: bytes) -> tuple[list[FolderEntry], int, str, dict[str, QueueRow]]:
    """The list script's output: job folders, squeue's exit status and text, its rows by id."""
    text = out.decode(errors="replace")
    head, _, squeue = text.partition("radops:squeue ")
    entries: list[FolderEntry] = []
    lines = head.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("radops:job "):
            try:
                meta = json.loads(lines[i]) if i < len(lines) else {}
            except ValueError:
                meta = {}
            i += 1
            entries.append(FolderEntry(line.removeprefix("radops:job "), meta))
        elif entries and line.startswith("radops:"):
            key, _, value = line.removeprefix("radops:").partition(" ")
            entries[-1].files[key] = value.strip()
    status_text, _, body = squeue.partition("\n")
    status = int(status_text) if status_text.strip().isdigit() else 1
    rows: dict[str, QueueRow] = {}
    if status == 0:
        for row in body.splitlines():
            parts = row.split("|")
            if len(parts) == 4:
                rows[parts[0]] = QueueRow(*parts)
    return entries, status, body.strip(), rows


def parse_record(text: str) -> tuple[int | None, str | None]:
    """A record's exit code and the node it ended on."""
    parts = text.split()
    code = int(parts[0]) if parts and parts[0].lstrip("-").isdigit() else None
    return code, parts[2] if len(parts) > 2 else None


@dataclass(frozen=True)
class Header:
    ok: bool
    rest: bytes


def find_header(out: bytes) -> Header | None:
    """`radops:ok` / `radops:error N` and what followed it, in a script's stdout."""
    for marker, ok in ((b"radops:ok\n", True), (b"radops:error ", False)):
        at = out.find(marker)
        if at != -1 and (at == 0 or out[at - 1 : at] == b"\n"):
            rest = out[at + len(marker) :]
            if not ok:
                rest = rest.partition(b"\n")[2]
            return Header(ok, rest)
    return None


class LogsReader:
    """The logs script's output: `radops:wait` lines (to `notice`) and an error before the
    `radops:ok` header; after it, the job's bytes as they come."""

    def __init__(self) -> None:
        self.pending = b""
        self.started = False
        self.error: bytes | None = None
        self.notices: list[str] = []

    def feed(self, stream: Stream, data: bytes) -> Iterator[tuple[Stream, bytes]]:
        if self.started:
            yield stream, data
            return
        if stream == "stderr":
            return  # the script's own stderr before the header: nothing of the job's
        self.pending += data
        while b"\n" in self.pending and not self.started:
            line, _, self.pending = self.pending.partition(b"\n")
            if line == b"radops:ok":
                self.started = True
            elif line.startswith(b"radops:wait "):
                self.notices.append(line.removeprefix(b"radops:wait ").decode(errors="replace"))
            elif line.startswith(b"radops:error "):
                self.error = self.pending
                self.pending = b""
                return
        if self.started and self.pending:
            rest, self.pending = self.pending, b""
            yield "stdout", rest
