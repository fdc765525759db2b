"""The autostop watcher that runs on a GCP VM, and the one-command scripts that arm, disarm and
read it over SSH. Pure text and parsing: nothing here connects anywhere.

On the VM, everything lives in `$HOME/.radops/autostop` (AUTOSTOP_DIR):

    watcher.sh   this module's WATCHER, run as `sh watcher.sh run` (a loop) by a systemd unit
                 (on a Compute Engine VM where the user has sudo) or as a detached process
    settings     idle_seconds, interval, action (stop|delete), project, zone, instance, docker
    activity     its modification time is the last use: radops commands touch it
                 (radops.gcp.activity), and so does the watcher while a job runs
    busy/PID     a radops command running now
    action       an override of the action: a shell script run instead of the default. The
                 default (the guest shutdown that stops a Compute Engine VM, or a delete through
                 the metadata server's token) is only ever used where /sys/class/dmi says
                 "Google Compute Engine"; anywhere else, without an override the watcher
                 refuses to arm. Tests write a harmless override before they arm.
    watcher.pid  the armed watcher; a watcher whose pid is no longer there exits
    fired        when the action ran: at most once per arming (mkdir fired.lock)
    log          what the watcher did
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from radops.gcp.activity import AUTOSTOP_DIR

UNIT = "radops-autostop.service"

# The watcher. Values it reads from `settings` are used as data, never evaluated.
WATCHER = r"""#!/bin/sh
# radops autostop watcher, written by radops (`radops executors gcp autostop`).
# Stops this VM once no radops job ran and no radops command used it for idle_seconds.
set -u
cd "$(dirname "$0")" || exit 1

setting() { sed -n "s/^$1=//p" settings 2>/dev/null | head -n 1; }
stamp() { date -u +%Y-%m-%dT%H:%M:%SZ; }
log() { printf '%s %s\n' "$(stamp)" "$*" >> log; }
on_gce() { grep -qx 'Google Compute Engine' /sys/class/dmi/id/product_name 2>/dev/null; }
is_watcher() { tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q 'autostop/watcher.sh run'; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

# What runs when idle: ./action if there is one, else the default, on Compute Engine only.
action_kind() {
  if [ -s action ]; then echo override
  elif on_gce; then echo default
  else echo none
  fi
}

stop_vm() {  # a guest shutdown: Compute Engine then shows the VM TERMINATED, disks kept
  as_root shutdown -h now
}

delete_vm() {  # the Compute API with the VM's own service account; else stop it
  md=http://metadata.google.internal/computeMetadata/v1
  token=$(curl -sf -H 'Metadata-Flavor: Google' "$md/instance/service-accounts/default/token" \
    | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')
  api=https://compute.googleapis.com/compute/v1
  url="$api/projects/$(setting project)/zones/$(setting zone)/instances/$(setting instance)"
  if [ -n "$token" ] && printf 'Authorization: Bearer %s\n' "$token" \
      | curl -sf -X DELETE -H @- "$url" > /dev/null; then
    log "asked Compute Engine to delete this VM"
  else
    log "could not delete this VM (its service account needs compute.instances.delete); stopping it"
    stop_vm
  fi
}

jobs_running() {
  dh=$(setting docker_host)
  if [ -n "$dh" ]; then DOCKER_HOST=$dh; export DOCKER_HOST; fi
  docker=$(setting docker)
  ids=$("${docker:-docker}" ps -q --filter label=dev.radops.job-id --filter status=running \
    2>/dev/null) || return 1
  [ -n "$ids" ]
}

commands_running() {
  found=1
  for f in busy/*; do
    [ -e "$f" ] || continue
    if [ -d "/proc/${f#busy/}" ]; then found=0; else rm -f "$f"; fi
  done
  return $found
}

fire() {
  mkdir fired.lock 2>/dev/null || exit 0  # exactly once per arming
  stamp > fired
  kind=$(action_kind)
  log "idle for $1s: running the $kind $(setting action) action"
  case $kind in
    override) sh ./action >> log 2>&1 ;;
    default) if [ "$(setting action)" = delete ]; then delete_vm; else stop_vm; fi ;;
    *) log "no action (no ./action and not a Compute Engine VM): doing nothing" ;;
  esac
  log "action exited with status $?"
}

run() {
  if [ "$(action_kind)" = none ]; then
    echo "not arming: no ./action override and this machine is not a Compute Engine VM" >&2
    log "refused to arm: no action"
    exit 3
  fi
  echo $$ > watcher.pid
  rm -rf fired.lock fired
  touch activity  # arming starts the idle clock
  log "armed: $(setting action) after $(setting idle_seconds)s idle ($(action_kind) action)"
  while [ "$(cat watcher.pid 2>/dev/null)" = "$$" ]; do
    idle=$(setting idle_seconds)
    case $idle in ''|*[!0-9]*) log "no idle_seconds: disarmed"; exit 0 ;; esac
    if jobs_running || commands_running; then touch activity; fi
    last=$(stat -c %Y activity 2>/dev/null || date +%s)
    # Both stamps are whole seconds (truncated): a difference of idle + 1 is at least idle
    # seconds of real time; one of idle may be barely more than idle - 1. Never early.
    if [ $(( $(date +%s) - last )) -gt "$idle" ]; then fire "$idle"; exit 0; fi
    interval=$(setting interval)
    case $interval in ''|*[!0-9]*) interval=60 ;; esac
    sleep "$interval"
  done
  log "replaced or disarmed: exiting"
}

status() {
  pid=$(cat watcher.pid 2>/dev/null)
  armed=0
  if [ -n "$pid" ] && is_watcher "$pid"; then armed=1; fi
  echo "armed=$armed"
  echo "idle_seconds=$(setting idle_seconds)"
  echo "action=$(setting action)"
  echo "action_kind=$(action_kind)"
  echo "now=$(date +%s)"
  echo "activity=$(stat -c %Y activity 2>/dev/null)"
  echo "fired=$(cat fired 2>/dev/null)"
}

case ${1:-} in
  run) run ;;
  status) status ;;
  action-kind) action_kind ;;
  *) echo "usage: watcher.sh run|status|action-kind" >&2; exit 2 ;;
esac
"""

# Arm: write the settings and the watcher, refuse without a known action, then start it (as a
# systemd unit only on a Compute Engine VM with systemd and sudo; else a detached process) and
# wait (bounded) until it runs. $1 = settings text, $2 = the watcher.
_ARM = r"""set -u
d="$HOME/.radops/autostop"
umask 077
mkdir -p "$d/busy" || exit 1
cd "$d" || exit 1
printf '%s' "$2" > watcher.sh.new && mv watcher.sh.new watcher.sh || exit 1
{ printf '%s' "$1"; printf 'docker_host=%s\n' "${DOCKER_HOST:-}"; } > settings.new \
  && mv settings.new settings || exit 1
kind=$(sh watcher.sh action-kind)
if [ "$kind" = none ]; then
  rm -f settings
  echo "radops:refused no ./action override in $d and this machine is not a Compute Engine VM"
  exit 3
fi
if [ "$kind" = default ] && [ "$(id -u)" != 0 ] && ! sudo -n true 2>/dev/null; then
  rm -f settings
  echo "radops:refused $(id -un) cannot shut this VM down: no passwordless sudo"
  exit 3
fi
is_watcher() { tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q 'autostop/watcher.sh run'; }
old=$(cat watcher.pid 2>/dev/null); rm -f watcher.pid
if [ -n "$old" ] && is_watcher "$old"; then kill "$old" 2>/dev/null; fi
on_gce() { grep -qx 'Google Compute Engine' /sys/class/dmi/id/product_name 2>/dev/null; }
mode=process
if on_gce && [ -d /run/systemd/system ] && sudo -n true 2>/dev/null; then
  printf '%s\n' '[Unit]' 'Description=radops autostop watcher' 'After=docker.service' \
    '[Service]' "User=$(id -un)" "ExecStart=/bin/sh $d/watcher.sh run" \
    'Restart=on-failure' 'RestartSec=30' '[Install]' 'WantedBy=multi-user.target' \
    | sudo -n tee /etc/systemd/system/@UNIT@ > /dev/null \
    && sudo -n systemctl daemon-reload && sudo -n systemctl enable @UNIT@ 2>/dev/null \
    && sudo -n systemctl restart @UNIT@ && mode=systemd
fi
if [ $mode = process ]; then
  if command -v setsid > /dev/null; then
    setsid nohup sh "$d/watcher.sh" run >> log 2>&1 < /dev/null &
  else
    nohup sh "$d/watcher.sh" run >> log 2>&1 < /dev/null &
  fi
fi
i=0
while [ $i -lt 50 ]; do
  pid=$(cat watcher.pid 2>/dev/null)
  if [ -n "$pid" ] && is_watcher "$pid"; then
    echo "radops:armed $mode $(sh watcher.sh action-kind)"; exit 0
  fi
  sleep 0.1; i=$((i + 1))
done
echo "radops:failed the watcher did not start; see $d/log"
exit 1
""".replace("@UNIT@", UNIT)

# Disarm: the watcher exits when its pid file goes; a unit (Compute Engine only) is disabled.
_DISARM = r"""d="$HOME/.radops/autostop"
[ -d "$d" ] || exit 0
cd "$d" || exit 1
is_watcher() { tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q 'autostop/watcher.sh run'; }
old=$(cat watcher.pid 2>/dev/null); rm -f watcher.pid settings
if [ -n "$old" ] && is_watcher "$old"; then kill "$old" 2>/dev/null; fi
rm -rf busy
if grep -qx 'Google Compute Engine' /sys/class/dmi/id/product_name 2>/dev/null \
    && [ -f /etc/systemd/system/@UNIT@ ]; then
  sudo -n systemctl disable --now @UNIT@ 2>/dev/null
fi
echo "radops:disarmed"
""".replace("@UNIT@", UNIT)

_STATUS = f'f="$HOME/{AUTOSTOP_DIR}/watcher.sh"; [ -f "$f" ] || exit 0; exec sh "$f" status'


@dataclass(frozen=True)
class WatcherSettings:
    """What the watcher on one VM is told."""

    idle_seconds: int
    action: str  # "stop" or "delete"
    project: str
    zone: str
    instance: str
    docker: str

    @property
    def interval(self) -> int:
        """Seconds between checks: a tenth of the idle period, between 1 s and 60 s."""
        return max(1, min(60, self.idle_seconds // 10))

    def text(self) -> str:
        fields = {
            "idle_seconds": str(self.idle_seconds),
            "interval": str(self.interval),
            "action": self.action,
            "project": self.project,
            "zone": self.zone,
            "instance": self.instance,
            "docker": self.docker,
        }
        for key, value in fields.items():
            if "\n" in value:
                raise ValueError(f"{key} cannot contain a newline")
        return "".join(f"{k}={v}\n" for k, v in fields.items())


def arm_argv(settings: WatcherSettings) -> list[str]:
    """One remote command that installs and arms the watcher (prints `radops:armed MODE KIND`,
    or `radops:refused WHY` with exit 3)."""
    return ["sh", "-c", _ARM, "radops-autostop", settings.text(), WATCHER]


def disarm_argv() -> list[str]:
    return ["sh", "-c", _DISARM, "radops-autostop"]


def status_argv() -> list[str]:
    return ["sh", "-c", _STATUS, "radops-autostop"]


@dataclass(frozen=True)
class WatcherStatus:
    """What `watcher.sh status` said: nothing installed is `installed=False`."""

    installed: bool
    armed: bool = False
    idle_seconds: int | None = None
    action: str | None = None
    idle_for: int | None = None  # seconds since the last activity, by the VM's clock
    fired: str | None = None  # when the action ran (UTC), if it did since arming

    def text(self) -> str:
        if not self.installed or self.idle_seconds is None:
            return "not installed"
        if self.fired:
            return f"fired at {self.fired}"
        return "armed" if self.armed else "not running"


def parse_status(out: str) -> WatcherStatus:
    fields: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    if not fields:
        return WatcherStatus(installed=False)

    def number(key: str) -> int | None:
        value = fields.get(key, "")
        return int(value) if value.isdigit() else None

    now, last = number("now"), number("activity")
    return WatcherStatus(
        installed=True,
        armed=fields.get("armed") == "1",
        idle_seconds=number("idle_seconds"),
        action=fields.get("action") or None,
        idle_for=max(now - last, 0) if now is not None and last is not None else None,
        fired=fields.get("fired") or None,
    )


def quoted(argv: list[str]) -> str:
    """The argv as a shell would be given it (for messages and tests)."""
    return shlex.join(argv)
