"""The small `sh` scripts that do two steps in one remote command, written and parsed here.

Each SSH session costs 0.15-0.3 s, so a step whose result decides the next (look the container
up, then read its logs; pull the image, then run it; look at the job, then stop it) runs in one
`sh -c SCRIPT` with every value as its own argument, never spliced into the script. The first
step's result is a header line on stdout (radops.executors.header): `radops:ok` before the
second step is exec'd, or `radops:error STATUS` followed by what the first step wrote to
stderr. So the first step's error text never mixes with the second's output.
"""

from __future__ import annotations

import re

from radops.executors.docker.argv import logs_argv
from radops.executors.docker.prune import human_bytes, unused_radops_images
from radops.executors.model import (
    LABEL_JOB_ID,
    Image,
    PrunePlan,
    PruneResult,
    container_name,
)

# The header, then the second step (the whole argv left, `"$@"`) if the first one's `$status`
# is 0.
_EXEC_IF_OK = (
    'if [ "$status" -eq 0 ]; then printf "radops:ok\\n"; exec "$@"; fi; '
    'printf "radops:error %d\\n%s\\n" "$status" "$err"'
)
_THEN_EXEC = "status=$?; " + _EXEC_IF_OK
# logs: look the container up, then `docker logs`.
LOGS_SCRIPT = (
    'd=$1 n=$2; shift 2; err=$("$d" container inspect --format "{{.Id}}" "$n" 2>&1 >/dev/null); '
    + _THEN_EXEC
)
# `docker pull $ref`: its progress lines to stderr as they come, its errors into $err.
_PULL = '{ err=$("$d" pull "$ref" 2>&1 </dev/null >&3 3>&-); } 3>&2; '
# run after shipping by registry: `docker pull` (stdin kept for the run's --env-file), then run.
PULL_RUN_SCRIPT = "d=$1 ref=$2; shift 2; " + _PULL + _THEN_EXEC


# run after shipping by registry, with a pull credential: stdin's first line is a docker config
# (JSON, `auths` for the one registry) and the run's --env-file follows it. The config goes into
# a throw-away folder used for this pull only, removed on every way out of the script (a client
# killed mid-pull included: the script runs on without it, and a write to its closed output ends
# it through the trap too). No `docker login`: it could hand the token to a credential helper
# (a keyring) on the machine, where it would outlive the folder.
_AUTH_PULL = (
    "IFS= read -r cfg; "
    "dir=$(mktemp -d -t radops-docker.XXXXXXXX) || "
    '{ printf "radops:error 1\\ncannot make a temporary folder\\n"; exit 0; }; '
    "trap 'rm -rf \"$dir\"' EXIT; trap 'rm -rf \"$dir\"; exit 129' HUP INT TERM PIPE; "
    '(umask 077 && printf "%s\\n" "$cfg" >"$dir/config.json"); cfg=; '
    '{ err=$("$d" --config "$dir" pull "$ref" 2>&1 </dev/null >&3 3>&-); } 3>&2; '
    'status=$?; rm -rf "$dir"; trap - EXIT HUP INT TERM PIPE; '
)
AUTH_PULL_RUN_SCRIPT = "d=$1 ref=$2; shift 2; " + _AUTH_PULL + _EXEC_IF_OK
# run after shipping through radops' own registry (radops.executors.ssh.tunnel): as
# AUTH_PULL_RUN_SCRIPT, then the image takes the name the run uses (its tag here) and loses the
# tunnel's, whose port is gone once the command ends.
AUTH_PULL_TAG_RUN_SCRIPT = (
    "d=$1 ref=$2 tag=$3; shift 3; " + _AUTH_PULL + 'if [ "$status" -eq 0 ]; then '
    'err=$("$d" tag "$ref" "$tag" 2>&1); status=$?; "$d" rmi "$ref" >/dev/null 2>&1; fi; '
    + _EXEC_IF_OK
)


# run --name: refused (a `radops:name-taken ID` line on stderr, exit 125, docker run's own
# status for a refusal) if a job's id starts with the name, else the run (the whole argv left).
# Checked where the job starts, in the same round trip: a later `NAME` would pick the named job
# (a name beats an id prefix), where it meant that job until now.
NAME_GUARD_SCRIPT = (
    'd=$1 n=$2 l=$3; shift 3; ids=$("$d" ps --all --filter "label=$l" '
    '--format "{{.Label \\"$l\\"}}" </dev/null) || exit $?; '
    'set -f; for i in $ids; do case $i in "$n"*) '
    'printf "radops:name-taken %s\\n" "$i" >&2; exit 125;; esac; done; set +f; exec "$@"'
)
NAME_TAKEN = re.compile(rb"^radops:name-taken (\S*)$", re.M)


def name_guard_argv(docker: str, name: str | None, run: list[str]) -> list[str]:
    """`run` (a `run_argv`) behind the --name check; as it is without a name."""
    if name is None:
        return run
    return ["sh", "-c", NAME_GUARD_SCRIPT, "radops-run", docker, name, LABEL_JOB_ID, *run]


def name_taken(stderr: bytes) -> str | None:
    """The id NAME_GUARD_SCRIPT refused the name for (as the remote sent it), else None."""
    found = NAME_TAKEN.search(stderr)
    return found[1].decode(errors="replace") if found else None


def checked_logs_argv(
    docker: str, name: str, follow: bool, tail: int | None, timestamps: bool
) -> list[str]:
    """`sh -c LOGS_SCRIPT` running `docker logs ...` for container `name` once it exists."""
    logs = logs_argv(docker, name, follow, tail, timestamps)
    return ["sh", "-c", LOGS_SCRIPT, "radops-logs", docker, name, *logs]


def pull_then_run_argv(docker: str, ref: str, run: list[str]) -> list[str]:
    """`sh -c PULL_RUN_SCRIPT`: pull `ref`, then `run` (a `run_argv`) once the pull worked."""
    return ["sh", "-c", PULL_RUN_SCRIPT, "radops-run", docker, ref, *run]


def auth_pull_then_run_argv(docker: str, ref: str, run: list[str]) -> list[str]:
    """`sh -c AUTH_PULL_RUN_SCRIPT`: pull `ref` with the docker config on stdin's first line,
    forget it, then `run`. The credential is never an argument."""
    return ["sh", "-c", AUTH_PULL_RUN_SCRIPT, "radops-run", docker, ref, *run]


def auth_pull_tag_run_argv(docker: str, ref: str, tag: str, run: list[str]) -> list[str]:
    """`sh -c AUTH_PULL_TAG_RUN_SCRIPT`: pull `ref` with the docker config on stdin's first
    line, name it `tag`, then `run`."""
    return ["sh", "-c", AUTH_PULL_TAG_RUN_SCRIPT, "radops-run", docker, ref, tag, *run]


# stop: look the container up, stop it if it runs; the header's rest is one line, `true` if it
# was running, then the container's `docker inspect` JSON.
STOP_SCRIPT = (
    'd=$1 n=$2 t=$3; shift 3; err=$("$d" container inspect --format "{{.State.Running}}" "$n" '
    '2>&1); status=$? running=$err; if [ "$status" -eq 0 ] && [ "$running" = true ]; then '
    'err=$("$d" stop --time "$t" "$n" 2>&1 >/dev/null); status=$?; fi; '
    'if [ "$status" -eq 0 ]; then printf "radops:ok\\n%s\\n" "$running"; exec "$d" "$@"; fi; '
    'printf "radops:error %d\\n%s\\n" "$status" "$err"'
)


def stop_argv(docker: str, name: str, timeout: int) -> list[str]:
    """`sh -c STOP_SCRIPT`: stop container `name` if it runs, then inspect it."""
    return ["sh", "-c", STOP_SCRIPT, "radops-stop", docker, name, str(timeout),
            "container", "inspect", name]  # fmt: skip


# prune's look: every container's name and image id, a marker line, then every image's id,
# size in bytes and tags. Containers or images removed meanwhile are skipped, not an error.
PRUNE_LOOK_SCRIPT = (
    'd=$1; ids=$("$d" ps -aq --no-trunc) || exit $?; '
    'if [ -n "$ids" ]; then "$d" container inspect --format "{{.Name}} {{.Image}}" $ids '
    "2>/dev/null; fi; echo radops:images; "
    'imgs=$("$d" images -q --no-trunc) || exit $?; '
    'if [ -n "$imgs" ]; then "$d" image inspect --format '
    '"{{.Id}} {{.Size}}{{range .RepoTags}} {{.}}{{end}}" $imgs 2>/dev/null; fi; exit 0'
)
# prune: remove the containers (not --force: one started again meanwhile stays), then the image
# refs after `--`; one line per success, and the engine's image disk use before and after.
PRUNE_SCRIPT = (
    'd=$1; shift; size() { "$d" system df --format "{{.Type}} {{.Size}}" 2>/dev/null '
    '| sed -n "s/^Images //p"; }; echo "radops:before $(size)"; '
    'while [ $# -gt 0 ] && [ "$1" != -- ]; do "$d" rm "$1" >/dev/null 2>&1 && '
    'echo "radops:job $1"; shift; done; [ $# -gt 0 ] && shift; '
    'for r in "$@"; do "$d" rmi "$r" >/dev/null 2>&1 && echo "radops:ref $r"; done; '
    'echo "radops:after $(size)"'
)


# ship by SSH, first look: the engine's storage driver status (the containerd image store says
# `io.containerd.snapshotter`), then the layers (diff IDs, a JSON list per line) of the images
# of one repository (earlier versions of the job's image) and of the named base images. Only
# those: inspecting every image of a busy engine takes seconds. Missing ones are skipped.
_LAYERS_FUNCTION = (
    'layers() { d=$1 repo=$2; shift 2; info=$("$d" info --format "{{json .DriverStatus}}") '
    '|| return $?; printf "radops:driver %s\\n" "$info"; '
    'ids=$("$d" images -q --no-trunc "$repo") || return $?; '
    'if [ -n "$ids" ]; then "$d" image inspect --format "{{json .RootFS.Layers}}" $ids '
    '2>/dev/null; fi; if [ $# -gt 0 ]; then "$d" image inspect --format '
    '"{{json .RootFS.Layers}}" "$@" 2>/dev/null; fi; echo radops:layers-end; return 0; }; '
)
LAYERS_SCRIPT = _LAYERS_FUNCTION + 'layers "$@"'
LAYERS_MARK = b"radops:layers\n"
LAYERS_END = b"radops:layers-end"  # the listing's last line: it was not cut short


def layers_argv(docker: str, repository: str, bases: list[str]) -> list[str]:
    return ["sh", "-c", LAYERS_SCRIPT, "radops-layers", docker, repository, *bases]


# a job's first try when it may have to ship by SSH: `docker run` (the arguments after the `n`
# base images); if the engine lacks the image, the same round trip then prints LAYERS_MARK and
# LAYERS_SCRIPT's listing, which the shipping needs next. The run's stderr passes through.
RUN_OR_LAYERS_SCRIPT = (
    _LAYERS_FUNCTION + 'd=$1 repo=$2 n=$3; shift 3; b=""; '
    'while [ "$n" -gt 0 ]; do b="$b$1\n"; shift; n=$((n - 1)); done; '
    '{ e=$("$@" 2>&1 >&3 3>&-); s=$?; } 3>&1; '
    'if [ -n "$e" ]; then printf "%s\\n" "$e" >&2; fi; '
    'case "$e" in *"No such image"*) printf "radops:layers\\n"; set -f; IFS="\n"; '
    'layers "$d" "$repo" $b;; esac; exit $s'
)


def run_or_layers_argv(
    docker: str, repository: str, bases: list[str], run_argv: list[str]
) -> list[str]:
    return [
        "sh", "-c", RUN_OR_LAYERS_SCRIPT, "radops-run", docker, repository, str(len(bases)),
        *bases, *run_argv,
    ]  # fmt: skip


# build on the executor: the context is stdin (a tar; `-`) or a folder there (radops'
# context cache, radops.executors.ssh.contexts), the argument after the docker path and the
# image's name while it builds (`radops/x:build-NONCE`, see RADOPS_HELD_IMAGE); the rest are
# `docker build` options. BuildKit where the docker CLI there has it (the buildx plugin, or a
# client before 23.0 with DOCKER_BUILDKIT=1), else the classic builder, announced by a
# `radops:legacy` line. Build output goes to stderr as it comes; the image's ID follows the
# header. No temporary file: the build's own name finds its image.
#
# radops gone (Ctrl-C, killed, connection lost) must not leave the build running, nor its image:
# sshd sends no signal to a command without a terminal, it only closes its output. So while the
# build runs, a watcher writes an empty line to stdout each second (the header reader skips
# them); the first write that fails ends the script through its trap (as HUP, INT, TERM or a
# failed write of its own do), which stops the build (the docker CLI cancels it when it ends,
# and a buildx plugin under it gets the signal too) and removes the build's name, and with it
# the image unless another name holds it.
REMOTE_BUILD_SCRIPT = (
    "d=$1 tag=$2 src=$3; shift 3; b= w=; "
    # stop: SIGTERM to the docker CLI and a plugin under it; SIGKILL 3 s later to what is left
    # (a docker 20.10 CLI reading its context from stdin ends only at a third SIGTERM).
    'stop() { pkill -TERM -P "$1" 2>/dev/null; kill "$1" 2>/dev/null; '
    '(sleep 3 </dev/null >/dev/null 2>&1; pkill -KILL -P "$1"; kill -KILL "$1") >/dev/null 2>&1 '
    '& k=$!; wait "$1"; kill "$k" 2>/dev/null; }; '
    'quit() { [ -z "$w" ] || kill "$w" 2>/dev/null; [ -z "$b" ] || stop "$b"; '
    '"$d" rmi "$tag" >/dev/null 2>&1 </dev/null; exit 129; }; '
    "trap quit HUP INT TERM PIPE; "
    'if "$d" buildx version >/dev/null 2>&1; then '
    'set -- buildx build --load --progress=plain "$@"; '
    'else v=$("$d" version --format "{{.Client.Version}}" 2>/dev/null); m=${v%%.*}; '
    'case "$m" in ""|*[!0-9]*) m=99;; esac; '
    'if [ "$m" -lt 23 ]; then DOCKER_BUILDKIT=1; set -- build --progress=plain "$@"; '
    'else echo radops:legacy >&2; DOCKER_BUILDKIT=0; set -- build "$@"; fi; '
    "export DOCKER_BUILDKIT; fi; "
    # (fd 3: a command started with & would otherwise read /dev/null, not the context)
    'exec 3<&0; "$d" "$@" --tag "$tag" "$src" <&3 3<&- >&2 & b=$!; exec 3<&-; '
    "(trap '' PIPE; while :; do sleep 1 </dev/null >/dev/null 2>&1; "
    'printf "\\n" 2>/dev/null || break; done; kill -TERM $$) & w=$!; '
    'wait "$b"; status=$?; b=; kill "$w" 2>/dev/null; w=; '
    'if [ "$status" -eq 0 ] && id=$("$d" image inspect --format "{{.Id}}" "$tag" </dev/null); '
    'then printf "radops:ok\\n%s\\n" "$id"; '
    'else "$d" rmi "$tag" >/dev/null 2>&1 </dev/null; printf "radops:error %d\\n" "$status"; fi'
)
LEGACY_BUILDER = "radops:legacy"


def remote_build_argv(
    docker: str, building: str, options: list[str], source: str = "-"
) -> list[str]:
    """Build there: the context from stdin (`-`, a tar) or a folder there (`source`)."""
    return ["sh", "-c", REMOTE_BUILD_SCRIPT, "radops-build", docker, building, source, *options]


# after a build on the executor: name the image by its tag and drop the build's own name (a
# failed tag thus removes the image), then run the job (stdin kept for --env-file). An image the
# tag named before (--no-cache built it again) that has no name left is removed; if a job still
# uses it, it is named `REPO:old-ID` instead, which `prune --images` removes once no job does.
TAG_RUN_SCRIPT = (
    'd=$1 b=$2 tag=$3; shift 3; old=$("$d" image inspect --format "{{.Id}}" "$tag" '
    '2>/dev/null </dev/null); err=$("$d" tag "$b" "$tag" 2>&1 </dev/null); status=$?; '
    '"$d" rmi "$b" >/dev/null 2>&1 </dev/null; '
    'if [ "$status" -eq 0 ] && [ -n "$old" ] && [ "$("$d" image inspect --format '
    '"{{len .RepoTags}}" "$old" 2>/dev/null </dev/null)" = 0 ]; then '
    '"$d" rmi "$old" >/dev/null 2>&1 </dev/null || { o=${old#sha256:}; '
    '"$d" tag "$old" "${tag%:*}:old-$(printf %.12s "$o")" >/dev/null 2>&1 </dev/null; }; fi; '
) + _EXEC_IF_OK


def tag_then_run_argv(docker: str, building: str, tag: str, run: list[str]) -> list[str]:
    return ["sh", "-c", TAG_RUN_SCRIPT, "radops-run", docker, building, tag, *run]


# copy to a job: stdin is a tar of one entry, NAME; unpacked in a temporary folder there, then
# `docker cp`, so its rules (into DEST if it is a folder, else as DEST) are docker's own.
COPY_TO_SCRIPT = (
    "d=$1 c=$2 n=$3 dest=$4; t=$(mktemp -d) || exit 1; trap 'rm -rf \"$t\"' EXIT; "
    'tar -x -f - -C "$t" || exit 1; "$d" cp "$t/$n" "$c:$dest"'
)


def copy_to_argv(
    docker: str, container: str, name: str, dest: str, contents: bool = False
) -> list[str]:
    """With `contents`, NAME's contents go (`docker cp NAME/. ...`), not the folder."""
    source = f"{name}/." if contents else name
    return ["sh", "-c", COPY_TO_SCRIPT, "radops-cp", docker, container, source, dest]


# top: nvidia-smi's query (its exit status first: 127 when there is none), then `docker stats`
# of the running radops jobs.
TOP_SCRIPT = (
    'd=$1; shift; g=$("$@" 2>/dev/null); printf "radops:gpus %d\\n%s\\n" "$?" "$g"; '
    'ids=$("$d" ps -q --filter label=dev.radops.job-id) || exit $?; echo radops:stats; '
    'if [ -n "$ids" ]; then "$d" stats --no-stream --format "{{json .}}" $ids; fi'
)


def top_argv(docker: str, gpu_query: list[str]) -> list[str]:
    return ["sh", "-c", TOP_SCRIPT, "radops-top", docker, *gpu_query]


def prune_look_argv(docker: str) -> list[str]:
    return ["sh", "-c", PRUNE_LOOK_SCRIPT, "radops-prune", docker]


def prune_argv(docker: str, containers: list[str], refs: list[str]) -> list[str]:
    return ["sh", "-c", PRUNE_SCRIPT, "radops-prune", docker, *containers, "--", *refs]


def unused_images(out: bytes, going: set[str]) -> list[Image]:
    """The radops images no container would use once the containers named in `going` (as
    `/radops-ID`) are gone, from PRUNE_LOOK_SCRIPT's output."""
    containers, _, image_lines = out.decode(errors="replace").partition("radops:images\n")
    used = set()
    for line in containers.splitlines():
        name, _, image_id = line.partition(" ")
        if name not in going:
            used.add(image_id.strip())
    found: dict[str, Image] = {}
    for line in image_lines.splitlines():
        image_id, size, *refs = line.split()
        found[image_id] = Image(image_id, refs, int(size) if size.isdigit() else 0)
    return unused_radops_images(found.values(), used)


def pruned(out: bytes, plan: PrunePlan) -> PruneResult:
    """What PRUNE_SCRIPT removed of `plan`, and the disk space the engine freed."""
    removed_names, removed_refs, sizes = set(), set(), {}
    for line in out.decode(errors="replace").splitlines():
        kind, _, value = line.partition(" ")
        if kind == "radops:job":
            removed_names.add(value)
        elif kind == "radops:ref":
            removed_refs.add(value)
        elif kind in ("radops:before", "radops:after"):
            sizes[kind] = human_bytes(value)
    before, after = sizes.get("radops:before"), sizes.get("radops:after")
    return PruneResult(
        [job.id for job in plan.jobs if container_name(job.id) in removed_names],
        [image for image in plan.images if set(image.refs) <= removed_refs],
        max(before - after, 0) if before is not None and after is not None else None,
    )
