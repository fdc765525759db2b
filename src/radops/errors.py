"""The RadopsError tree: every failure the user can see, with a message, a hint and an exit code.

RadopsError                 exit 1  something went wrong while doing the work
├── UsageError              exit 2  bad input: invalid name, missing path, no Dockerfile, ...
├── NotFoundError           exit 3  unknown executor or job
├── ConfigError             exit 4  the config file cannot be read, parsed or written
├── EngineUnreachableError  exit 5  no Docker engine answers (local socket, or over SSH), no SSH
│                                   connection, or Compute Engine cannot be reached
├── BuildError              exit 6  `docker build` failed
├── HostKeyError            exit 7  an SSH host key is unknown (and not trusted) or has changed
└── CloudError              exit 8  Google Cloud refused: quota, zone capacity, API error
Interrupted (Ctrl-C) exits 130. `run --follow` exits with the job's own exit code.
"""

from __future__ import annotations


class RadopsError(Exception):
    """A failure the CLI reports as one line (plus an optional hint) and an exit code."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(RadopsError):
    exit_code = 2


class NotFoundError(RadopsError):
    exit_code = 3


class ConfigError(RadopsError):
    exit_code = 4


class EngineUnreachableError(RadopsError):
    exit_code = 5
    lost: str | None = None  # where a connection that worked dropped midway (`lost_connection`)


def lost_connection(where: str, hint: str | None = None) -> EngineUnreachableError:
    """A connection to `where` that worked dropped midway. The default hint is `run`'s; what
    was under way says more where it can (`cp`: the copy did not finish)."""
    error = EngineUnreachableError(
        f"lost the SSH connection to {where}",
        hint or "The job, if it started, keeps running there; see `radops executors jobs`.",
    )
    error.lost = where
    return error


class BuildError(RadopsError):
    exit_code = 6


class HostKeyError(RadopsError):
    exit_code = 7
    unknown_key = False  # True: a key never seen (not a changed or refused one), see below


def unknown_host_key(
    message: str, trust_with: str = "rerun with --accept-host-key"
) -> HostKeyError:
    """A host key radops has not seen and was not told to trust; the hint says how to trust
    it, with a command that has --accept-host-key (`run`, `jobs`, ... do not)."""
    error = HostKeyError(
        message,
        f"Check the fingerprint with the machine's owner, then {trust_with} (or add the key to "
        "~/.ssh/known_hosts).",
    )
    error.unknown_key = True
    return error


class CloudError(RadopsError):
    exit_code = 8
