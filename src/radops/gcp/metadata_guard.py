"""A firewall rule on VMs radops creates: job containers cannot reach the metadata server."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from radops.executors.ssh.executor import SSHExecutor
    from radops.progress import ProgressCallback

METADATA_IP = "169.254.169.254"
UNIT = "radops-metadata-guard.service"
SCRIPT = "/usr/local/sbin/radops-metadata-guard"

# The rule, idempotent (run at every boot by UNIT, after Docker). DOCKER-USER is Docker's hook
# at the top of FORWARD: traffic from containers on every bridge network passes it, and Docker
# never flushes it. The VM's own processes (the autostop watcher, Google's guest agent) reach
# the server through OUTPUT, which it does not touch. A job on `--network host` is not
# covered. The chain and the jump are made here if Docker has not made them yet (it keeps both).
RULES = f"""set -u
ipt() {{ iptables -w "$@"; }}
ipt -n -L DOCKER-USER >/dev/null 2>&1 || ipt -N DOCKER-USER || exit 1
ipt -C FORWARD -j DOCKER-USER 2>/dev/null || ipt -I FORWARD 1 -j DOCKER-USER || exit 1
ipt -C DOCKER-USER -d {METADATA_IP}/32 -j REJECT 2>/dev/null \\
  || ipt -I DOCKER-USER 1 -d {METADATA_IP}/32 -j REJECT || exit 1
"""

# Install on a Compute Engine VM, as root (or with passwordless sudo): the script, a boot-time
# unit where systemd runs, and the rule now. Prints one `radops:guard on|skipped WHY|failed WHY`
# line; touches nothing on any other machine. $1 = RULES.
_INSTALL = f"""set -u
if ! grep -qx 'Google Compute Engine' /sys/class/dmi/id/product_name 2>/dev/null; then
  echo "radops:guard skipped not a Compute Engine VM"; exit 0
fi
as_root() {{ if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }}
if ! as_root true 2>/dev/null; then echo "radops:guard skipped no passwordless sudo"; exit 0; fi
if ! command -v iptables >/dev/null; then echo "radops:guard skipped no iptables"; exit 0; fi
printf '%s' "$1" | as_root tee {SCRIPT} >/dev/null && as_root chmod 755 {SCRIPT} \\
  || {{ echo "radops:guard failed cannot write {SCRIPT}"; exit 0; }}
if [ -d /run/systemd/system ]; then
  printf '%s\\n' '[Unit]' 'Description=radops: job containers cannot reach the metadata server' \\
    'After=docker.service' '[Service]' 'Type=oneshot' 'RemainAfterExit=yes' \\
    'ExecStart=/bin/sh {SCRIPT}' '[Install]' 'WantedBy=multi-user.target' \\
    | as_root tee /etc/systemd/system/{UNIT} >/dev/null \\
    && as_root systemctl daemon-reload && as_root systemctl enable {UNIT} 2>/dev/null
fi
err=$(as_root sh {SCRIPT} 2>&1) || {{ echo "radops:guard failed $err"; exit 0; }}
echo "radops:guard on"
"""


def install_argv() -> list[str]:
    """One remote command that installs the guard (see _INSTALL)."""
    return ["sh", "-c", _INSTALL, "radops-metadata-guard", RULES]


def parse_install(out: str) -> tuple[str, str]:
    """(`on` | `skipped` | `failed` | `unknown`, the reason) from the install's output."""
    for line in out.splitlines():
        if line.startswith("radops:guard "):
            state, _, why = line.removeprefix("radops:guard ").partition(" ")
            return state, why
    return "unknown", out.strip()[-200:]


def install(executor: SSHExecutor, name: str, progress: ProgressCallback) -> str:
    """Install the guard on `name` over `executor`'s connection; say what came of it. A VM
    whose guard could not be installed still works: the user is told (a progress line)."""
    _, out, err = executor.conn.run(install_argv())
    state, why = parse_install(out.decode(errors="replace") or err.decode(errors="replace"))
    if state == "on":
        progress(f"Job containers on {name} cannot reach the metadata server ({METADATA_IP})")
    elif state == "skipped":
        progress(f"Job containers on {name} can reach the metadata server: {why}")
    else:
        progress(f"Warning: could not block the metadata server for jobs on {name}: {why}")
    return state
