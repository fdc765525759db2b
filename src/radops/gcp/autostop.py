"""Autostop settings: how long a VM may stay idle, and whether it then stops or is deleted.

The setting a user asked for is kept in the instance's metadata (METADATA_KEY, e.g. `1800 stop`),
so every radops that looks at the project sees it, a stopped VM included; what the VM itself
acts on is its watcher's settings file (radops.gcp.watcher), written over SSH.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from radops.errors import UsageError

METADATA_KEY = "radops-autostop"
ACTIONS = ("stop", "delete")
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 30 * 86400
OFF_WORDS = ("off", "none", "never")
DURATION_HINT = "Give a duration such as 30m, 2h, 90s or 1d (a bare number is minutes), or off."


@dataclass(frozen=True)
class Autostop:
    """Stop (or delete) the VM after `seconds` without a radops job or command."""

    seconds: int
    action: str = "stop"

    def text(self) -> str:
        """For people: `30m`, or `2h (delete)`."""
        suffix = "" if self.action == "stop" else f" ({self.action})"
        return format_duration(self.seconds) + suffix

    def metadata_value(self) -> str:
        return f"{self.seconds} {self.action}"


def parse_duration(text: str, what: str = "--autostop") -> int | None:
    """Seconds in `30m`/`2h`/`90s`/`1d`/`45` (minutes); None for `off`; else a UsageError."""
    value = text.strip().lower()
    if value in OFF_WORDS:
        return None
    m = _DURATION.fullmatch(value)
    if m is None:
        raise UsageError(f"invalid {what} {text!r}", DURATION_HINT)
    seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2) or "m"]
    if seconds == 0:
        raise UsageError(
            f"invalid {what} {text!r}: it must be longer than 0",
            "To turn autostop off, give `off`.",
        )
    if seconds > MAX_SECONDS:
        raise UsageError(f"invalid {what} {text!r}: at most 30 days", DURATION_HINT)
    return seconds


def format_duration(seconds: int) -> str:
    """`90s`, `30m`, `2h`, `1h30m`, `3d`: the largest units that say it exactly (two at most)."""
    if seconds < 60:
        return f"{seconds}s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2 or not seconds:
            break
    return "".join(parts)


def from_metadata(metadata: dict[str, str]) -> Autostop | None:
    """The setting recorded on a VM, if any (an unreadable value counts as none)."""
    words = metadata.get(METADATA_KEY, "").split()
    if not words or not words[0].isdigit() or int(words[0]) <= 0:
        return None
    action = words[1] if len(words) > 1 and words[1] in ACTIONS else "stop"
    return Autostop(int(words[0]), action)


def requested(
    flag: str | None, delete: bool, default: str | None, what: str = "--autostop"
) -> Autostop | None:
    """The autostop a command asks for: its flag, else the `gcp_autostop` setting, else none.
    `delete` without any duration is refused."""
    source, text = (what, flag) if flag is not None else ("the gcp_autostop setting", default)
    seconds = parse_duration(text, source) if text else None
    if seconds is None:
        if delete:
            raise UsageError(
                "--autostop-delete needs an autostop duration",
                "Add --autostop 30m (or set a default: `radops config set gcp_autostop 60m`).",
            )
        return None
    return Autostop(seconds, "delete" if delete else "stop")
