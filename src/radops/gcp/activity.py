"""Activity marks for a VM's autostop watcher: every radops command on a GCP executor says so.

The watcher (radops.gcp.watcher) lives in AUTOSTOP_DIR under the SSH user's home on the VM.
While a radops command runs there, its process id is a file in `busy/`, and it touches
`activity` when it starts: the watcher counts both as use, so a long `cp` or image transfer
after the last job keeps the VM up. Where no watcher is installed the wrapper only execs.
"""

from __future__ import annotations

from collections.abc import Sequence

AUTOSTOP_DIR = ".radops/autostop"  # under $HOME on the VM

# `sh -c` text: "$@" is the command's argv, passed as arguments (quoted once, with the rest).
_MARK = (
    f'a="$HOME/{AUTOSTOP_DIR}"; '
    'if [ -d "$a/busy" ]; then '
    'touch "$a/activity" 2>/dev/null; { : > "$a/busy/$$"; } 2>/dev/null; '
    '"$@"; s=$?; rm -f "$a/busy/$$"; exit $s; '
    'fi; exec "$@"'
)


def activity_prefix() -> list[str]:
    """What goes before a command's argv so that it counts as use of the VM."""
    return ["sh", "-c", _MARK, "radops"]


def with_activity(argv: Sequence[str]) -> list[str]:
    return [*activity_prefix(), *argv]
