#!/usr/bin/env bash
# Make this machine ready for radops' demo and tests: Debian packages, a virtualenv with radops,
# a Docker engine that answers, and the demo's base image. Idempotent: skips what is already there.
# With --venv-only: only the virtualenv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RADOPS_VENV:-$ROOT/.venv}"
BASE_IMAGE="$(awk 'toupper($1)=="FROM"{print $2; exit}' "$ROOT/demos/remote_execution/Dockerfile")"
log() { printf '[bootstrap] %s\n' "$*" >&2; }

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_debian_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  has_buildkit || missing+=(docker.io)  # its docker 20.10 client builds with BuildKit
  [ -x /bin/busybox ] && file_is_static /bin/busybox || missing+=(busybox-static)
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing+=(iproute2)
  command -v fish >/dev/null || missing+=(fish)  # tests: a remote user whose login shell is fish
  # tests: a real Slurm cluster (controller, two nodes, munge) whose nodes run jobs with docker
  # or podman (tests/slurm_rig.py); nsenter starts the second node in a network namespace.
  command -v slurmctld >/dev/null || [ -x /usr/sbin/slurmctld ] || missing+=(slurm-wlm)
  command -v munged >/dev/null || [ -x /usr/sbin/munged ] || missing+=(munge)
  command -v podman >/dev/null || missing+=(podman)
  [ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)  # podman run --init
  command -v nsenter >/dev/null || missing+=(util-linux)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  command -v curl >/dev/null || missing+=(curl)  # the containerd-store engine's packages
  command -v xz >/dev/null || missing+=(xz-utils)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    sudo_ apt-get update -qq
    sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

file_is_static() { ! ldd "$1" >/dev/null 2>&1; }

# Some docker client on PATH builds with BuildKit: the buildx plugin, or BuildKit built in
# (clients before 23.0), as radops looks for them (src/radops/images/builder.py).
has_buildkit() {
  local d
  for d in $(type -ap docker); do
    "$d" buildx version >/dev/null 2>&1 && return 0
    [[ "$("$d" --version 2>/dev/null)" =~ ^Docker\ version\ (18\.09|19\.|2[0-2]\.) ]] && return 0
  done
  return 1
}

install_radops() {
  local stamp="$VENV/.radops-installed"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    python3 -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    log "installing radops and its dev tools into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[dev]"
    touch "$stamp"
  fi
}

start_docker() {
  if docker version >/dev/null 2>&1; then return; fi
  if [ -n "${DOCKER_HOST:-}" ]; then
    log "DOCKER_HOST=$DOCKER_HOST does not answer; not starting another engine"
    return 1
  fi
  log "starting dockerd (log: /tmp/radops-dockerd.log)"
  sudo_ sh -c 'nohup dockerd >/tmp/radops-dockerd.log 2>&1 &'
  for _ in $(seq 60); do
    docker version >/dev/null 2>&1 && return
    sleep 0.5
  done
  log "dockerd did not answer within 30s; see /tmp/radops-dockerd.log"
  return 1
}

ensure_base_image() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return
  log "pulling $BASE_IMAGE"
  if timeout 60 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
  log "no registry reachable: building a stand-in $BASE_IMAGE from Debian's busybox-static"
  local dir; dir="$(mktemp -d)"
  cp /bin/busybox "$dir/busybox"
  cat >"$dir/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["sh"]
DOCKERFILE
  docker build -q -t "$BASE_IMAGE" "$dir" >/dev/null
  rm -rf "$dir"
}

# tests: a Docker engine with the containerd image store (tests/containerd_engine.py). Debian
# 12's is 20.10, which has none; Debian 13's dockerd and containerd run here. They are unpacked
# (not installed: nothing of the system's changes) into CD_ENGINE, from the mirror apt uses,
# checked as apt would: the release file's signature (Debian's archive keyring), the package
# index's and each package's SHA256. Found in the index, so a newer build is found too. Only
# the tests need it: if it cannot be had, bootstrap says so and goes on (those tests fail).
CD_ENGINE="${RADOPS_CONTAINERD_ENGINE:-/opt/radops/containerd-engine}"
CD_ENGINE_SUITE=trixie
CD_ENGINE_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
install_containerd_store_engine() (
  [ -x "$CD_ENGINE/usr/sbin/dockerd" ] && [ -x "$CD_ENGINE/usr/bin/containerd" ] && exit 0
  mirror="$(apt_mirror)"
  [ -n "$mirror" ] || { log "no Debian mirror in apt's sources"; exit 1; }
  arch="$(dpkg --print-architecture)" || exit 1
  index="main/binary-$arch/Packages.xz"
  log "unpacking Debian $CD_ENGINE_SUITE's dockerd and containerd into $CD_ENGINE"
  tmp="$(mktemp -d)" || exit 1
  trap 'rm -rf "$tmp"; sudo_ rm -rf "$CD_ENGINE.new"' EXIT
  fetch() { curl -fsS --retry 3 -o "$tmp/$1" "$mirror/$2"; }
  fetch InRelease "dists/$CD_ENGINE_SUITE/InRelease" || exit 1
  gpgv --quiet --keyring "$CD_ENGINE_KEYRING" --output "$tmp/Release" "$tmp/InRelease" \
    2>/dev/null || { log "$CD_ENGINE_SUITE's release file: bad signature"; exit 1; }
  sum="$(awk -v f="$index" '/^SHA256:/{s=1; next} /^[^ ]/{s=0} s&&$3==f{print $1}' \
    "$tmp/Release")"
  fetch Packages.xz "dists/$CD_ENGINE_SUITE/$index" || exit 1
  checked "$sum" "$tmp/Packages.xz" || exit 1
  xz -dc "$tmp/Packages.xz" >"$tmp/Packages" || exit 1
  sudo_ rm -rf "$CD_ENGINE.new" && sudo_ mkdir -p "$CD_ENGINE.new" || exit 1
  for pkg in docker.io containerd; do
    read -r file sum < <(awk -v p="$pkg" '$1=="Package:"{hit=($2==p)}
      hit&&$1=="Filename:"{f=$2} hit&&$1=="SHA256:"{h=$2} hit&&/^$/&&f{print f, h; exit}
      END{if (hit&&f) print f, h}' "$tmp/Packages")
    [ -n "${file:-}" ] || { log "no $pkg in $CD_ENGINE_SUITE's index"; exit 1; }
    fetch "$pkg.deb" "$file" && checked "$sum" "$tmp/$pkg.deb" || exit 1
    sudo_ dpkg-deb -x "$tmp/$pkg.deb" "$CD_ENGINE.new" || exit 1
  done
  sudo_ rm -rf "$CD_ENGINE" && sudo_ mkdir -p "$(dirname "$CD_ENGINE")" \
    && sudo_ mv "$CD_ENGINE.new" "$CD_ENGINE"  # whole or not at all
)

# $2's SHA256 is $1 (which must be given).
checked() {
  [ -n "$1" ] && printf '%s  %s\n' "$1" "$2" | sha256sum -c --quiet - >/dev/null 2>&1 && return
  log "$(basename "$2"): checksum mismatch"
  return 1
}

# The Debian mirror apt is configured with (deb822 sources first, then one-line ones), the
# security archive aside.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list
  do [ -r "$f" ] && cat "$f"; done | grep -E '^(URIs:|deb )' | grep -v -- '-security' \
    | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) {sub(/\/$/, "", $i); print $i; exit}}' \
    || true  # awk leaves at the first mirror: the pipe's writers may see it closed
}

# tests: stand-ins for a four-GPU machine's NVIDIA parts (tests/gpu_standin/): the OCI hook
# whose presence on dockerd's PATH makes dockerd register its `nvidia` device driver, and an
# nvidia-smi answering radops' queries. Only the rig's engine and sshd get this folder on their
# PATH (tests/rig.py): the machine's own engine stays one without a GPU runtime.
GPU_STANDIN="${RADOPS_GPU_STANDIN:-/opt/radops/gpu-standin}"
install_gpu_standin() {
  local f
  for f in "$ROOT"/tests/gpu_standin/*; do
    cmp -s "$f" "$GPU_STANDIN/$(basename "$f")" && continue
    log "installing the GPU stand-in $(basename "$f") into $GPU_STANDIN"
    sudo_ install -D -m 755 "$f" "$GPU_STANDIN/$(basename "$f")"
  done
}

if [ "${1:-}" = --venv-only ]; then  # what the fast tier (`scripts/test.sh --fast`) needs
  install_radops
  exit 0
fi
install_debian_packages
install_containerd_store_engine || log "no containerd-store engine: its tests will fail"
install_radops
install_gpu_standin
start_docker
ensure_base_image
log "ready: $VENV/bin/radops, Docker $(docker version --format '{{.Server.Version}}')"
