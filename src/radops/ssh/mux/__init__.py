"""Keep an SSH connection open between radops commands, as OpenSSH's ControlPersist does.

The first command that reaches a host connects itself (asking about an unknown host key if it
must) and, when it is done, starts `python -m radops.ssh.mux.server` in the background
(`client.spawn`). That process connects with the same settings, trusting only host keys that
are already known, and serves remote commands to later radops commands over a unix socket
until it has been idle for the persist time (`ssh_persist`, default 300 s; 0 turns this off).
A later command then needs neither paramiko nor a key exchange: it sends the argv and relays
stdin, stdout, stderr and the exit status (`client.MuxCommand`).

- `protocol`: the frames on the socket, and what each side may conclude from them.
- `sockets`: where a host's socket lives (a private folder, a name derived from the settings).
- `client`: probe, retire, run one command, start a server.
- `server`: the background process; it uses only `radops.ssh.connection`'s public API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from radops.errors import UsageError

if TYPE_CHECKING:
    from radops.config import Settings

DEFAULT_PERSIST_S = 300
MAX_PERSIST_S = 7 * 24 * 3600


def parse_persist(value: str) -> int:
    """`ssh_persist` as seconds: a whole number from 0 (off) to a week."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_PERSIST_S:
        raise UsageError(
            f"invalid ssh_persist {value!r}: give seconds, 0 to {MAX_PERSIST_S} (0 turns it off)"
        )
    return int(text)


def persist_seconds(settings: Settings) -> int:
    """How long an idle shared connection stays open: RADOPS_SSH_PERSIST, the setting, 300."""
    from radops.plainconfig import resolve_setting

    value = resolve_setting(settings, "ssh_persist")
    return DEFAULT_PERSIST_S if value is None else parse_persist(value)
