"""The `sh` scripts the Slurm executor runs on the login node (submit, list, wait, logs, stop,
remove, check), and the parsers of what they print. Pure text: no I/O.

Every value reaches a script as its own argument or as stdin, never spliced into its text. A
job's folder on the shared storage, JOB_DIR/<job id>, holds:

    job.json    the job's radops labels and what was asked of Slurm (written at submit)
    env         its -e values (0600), read by the container runtime; removed when the batch
                script ends, and by `stop` and `rm` (a job cancelled while pending never ran it)
    job.sh      the batch script (_slurm_batch.py); slurm-id: Slurm's job id
    stdout, stderr   the job's output (sbatch --output/--error)
    started     written when the job starts; record: `EXIT_CODE ENDED_AT NODE` when it ends,
                so a job keeps its end state after squeue forgets it (no accounting needed)

Each script is given JOB_DIR and the job id apart, and refuses (`radops:refused WHY`) a JOB_DIR
that is a symbolic link, not the user's, or writable by group or others, and any job id that
is not 12 lowercase hex digits: a path it touches is JOB_DIR/<id> and nothing else.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from radops.executors.slurm.folders import ACTIVE_STATES

SQUEUE_FORMAT = "%i|%T|%r|%N"

# `refuse WHY...` ends a script with `radops:error` and `radops:refused WHY`. `jobdir` checks
# $J (returns 1 when it does not exist yet); `jobfolder` checks $id and sets d=$J/$id.
_GUARD = (
    'refuse() { printf "radops:error 1\\nradops:refused %s\\n" "$*"; exit 0; }; '
    'jobdir() { [ -L "$J" ] && refuse symlink; [ -e "$J" ] || return 1; '
    '[ -d "$J" ] || refuse not-a-folder; '
    '[ -O "$J" ] || refuse owner "$(ls -ldn "$J" | { read -r m n u r; echo "$u"; })"; '
    'm=$(ls -ld "$J"); m=${m%% *}; case $m in ?????w*|????????w*) refuse mode "$m";; esac; }; '
    "jobfolder() { case $id in *[!0-9a-f]*) refuse job-id;; esac; "
    '[ ${#id} -eq 12 ] || refuse job-id; d=$J/$id; [ -L "$d" ] && refuse job-symlink; }; '
)
# A job script's start: $J and $id checked, the Slurm id made a number (0: none), so that
# nothing a folder holds reaches squeue or scancel as an option.
_JOB_START = _GUARD + 'jobdir; jobfolder; case $sid in ""|*[!0-9]*) sid=0;; esac; '


# submit: stdin is two lines (the env file and job.json, each in base64), then the batch
# script; they go into the job's new folder (0700, files 0600), then sbatch. The header line
# says what sbatch said: `radops:ok` and Slurm's job id, or `radops:error STATUS` and its
# message.
SUBMIT_SCRIPT = (
    'J=$1 id=$2; shift 2; umask 077; [ -L "$J" ] || mkdir -p "$J" || exit 1; '
    + _GUARD
    + 'jobdir; jobfolder; mkdir "$d" || exit 1; IFS= read -r env; IFS= read -r meta; '
    'if [ -n "$env" ]; then printf %s "$env" | base64 -d >"$d/env" || exit 1; fi; '
    'printf %s "$meta" | base64 -d >"$d/job.json" && cat >"$d/job.sh" || exit 1; '
    'out=$(sbatch "$@" "$d/job.sh" 2>&1 </dev/null); status=$?; '
    'if [ "$status" -eq 0 ]; then printf "%s\\n" "$out" >"$d/slurm-id"; '
    'printf "radops:ok\\n%s\\n" "$out"; exit 0; fi; '
    'rm -rf "$d"; printf "radops:error %d\\n%s\\n" "$status" "$out"'
)


def submit_argv(job_dir: str, job_id: str, sbatch_args: list[str]) -> list[str]:
    return ["sh", "-c", SUBMIT_SCRIPT, "radops-submit", job_dir, job_id, *sbatch_args]


def submit_stdin(env: bytes, meta: dict[str, Any], script: str) -> bytes:
    """What the submit script reads: nothing secret on a command line."""
    meta_line = base64.b64encode(json.dumps(meta).encode())
    return base64.b64encode(env) + b"\n" + meta_line + b"\n" + script.encode()


# list: every job folder's name, job.json (one line), slurm-id, started and record (first line
# each), then squeue's view of this user's jobs (its exit status first: squeue fails when the
# controller or munge is down). A folder that is a symbolic link is named, not read.
JOBS_SCRIPT = (
    "J=$1; "
    + _GUARD
    + 'if jobdir && cd "$J"; then for j in */job.json; do [ -f "$j" ] || continue; '
    'id=${j%/job.json}; printf "radops:job %s\\n" "$(printf %s "$id" | tr "\\n" "?")"; '
    'if [ -L "$id" ]; then printf "{}\\nradops:symlink 1\\n"; continue; fi; '
    'tr -d "\\n" <"$j"; echo; '
    'for f in slurm-id started record; do [ -f "./$id/$f" ] && '
    'printf "radops:%s %s\\n" "$f" "$(head -n 1 "./$id/$f")"; done; done; fi; '
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
    "J=$1 id=$2 sid=$3; "
    + _JOB_START
    + _STATE_FN
    + 'while [ ! -f "$d/record" ]; do state "$sid"; active || break; sleep 1; done; '
    'if [ -f "$d/record" ]; then printf "radops:ok\\n%s\\n" "$(cat "$d/record")"; '
    'else printf "radops:ok\\nended %s\\n" "$st"; fi'
)


def wait_argv(job_dir: str, job_id: str, slurm_id: str) -> list[str]:
    return ["sh", "-c", WAIT_SCRIPT, "radops-wait", job_dir, job_id, slurm_id]


# logs: with follow, wait while the job is pending (a `radops:wait STATE REASON` line each time
# that changes), then `radops:ok` and the output; stdout to stdout, stderr to stderr. Following
# reads what each file gained since the last look until the job has ended, then once more.
LOGS_SCRIPT = (
    "J=$1 id=$2 sid=$3 follow=$4 tail=$5; "
    + _JOB_START
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


def logs_argv(
    job_dir: str, job_id: str, slurm_id: str, follow: bool, tail: int | None
) -> list[str]:
    return ["sh", "-c", LOGS_SCRIPT, "radops-logs", job_dir, job_id, slurm_id,
            "1" if follow else "0", "" if tail is None else str(tail)]  # fmt: skip


# `grace T`: how long the job's trap gives the container, written beside it and moved into
# place, so a link planted as stop-timeout is replaced, never written through.
_GRACE_FN = (
    'grace() { tmp=$(mktemp "$d/.stop-timeout.XXXXXX") && printf "%s\\n" "$1" >"$tmp" && '
    'mv -f "$tmp" "$d/stop-timeout"; }; '
)
# `cancel`: scancel the job if it has not ended, and wait (bounded) until it has. Its env file
# goes then: a job cancelled while pending never ran the script that removes it.
_CANCEL_FN = (
    'cancel() { if [ ! -f "$d/record" ]; then state "$sid"; if active; then was=true; '
    'out=$(scancel "$sid" 2>&1) || { printf "radops:error 1\\n%s\\n" "$out"; exit 0; }; '
    'i=0; while [ ! -f "$d/record" ] && [ "$i" -lt "$limit" ]; do state "$sid"; '
    "active || break; sleep 1; i=$((i + 1)); done; fi; fi; "
    'rm -f "$d/env"; }; '
)

# stop: the header's rest is `true` if the job was queued or running.
STOP_SCRIPT = (
    "J=$1 id=$2 sid=$3 t=$4 limit=$5; "
    + _JOB_START
    + _STATE_FN
    + _GRACE_FN
    + _CANCEL_FN
    + 'was=false; grace "$t"; cancel; printf "radops:ok\\n%s\\n" "$was"'
)


def stop_argv(job_dir: str, job_id: str, slurm_id: str, timeout: int, limit: int) -> list[str]:
    return ["sh", "-c", STOP_SCRIPT, "radops-stop", job_dir, job_id, slurm_id, str(timeout),
            str(limit)]  # fmt: skip


# remove: cancel (if asked), then the job's folder goes: JOB_DIR/<id>, checked above.
REMOVE_SCRIPT = (
    "J=$1 id=$2 sid=$3 force=$4 limit=$5; "
    + _JOB_START
    + _STATE_FN
    + _GRACE_FN
    + _CANCEL_FN
    + 'was=false; if [ "$force" = 1 ] && [ -d "$d" ]; then grace 0; cancel; fi; '
    'rm -rf "$d" && printf "radops:ok\\n"'
)


def remove_argv(job_dir: str, job_id: str, slurm_id: str, force: bool, limit: int) -> list[str]:
    return ["sh", "-c", REMOVE_SCRIPT, "radops-rm", job_dir, job_id, slurm_id,
            "1" if force else "0", str(limit)]  # fmt: skip


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
