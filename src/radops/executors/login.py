"""What the executor kinds reached over SSH share: the machine radops logs in to (an SSH
host's engine, a Slurm login node), one connection to it opened on first use, and the local
images built for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radops.executors.base import Ask, Executor
from radops.executors.context import ExecutorContext
from radops.executors.model import EngineReport

if TYPE_CHECKING:
    from radops.images.service import LocalImages
    from radops.specs import LoginSpec
    from radops.ssh.remote import SSHConnection


class LoginExecutor(Executor):
    """An executor behind one SSH login. Kinds say which host keys are pinned (`_pinned`)
    and what every remote command is prefixed with (`_prefix`)."""

    spec: LoginSpec

    def __init__(self, spec: LoginSpec, context: ExecutorContext | None = None) -> None:
        super().__init__(spec, context)
        self._conn: SSHConnection | None = None
        self._images: LocalImages | None = None

    @classmethod
    def ask_fields(cls, fields: dict[str, Any], ask: Ask) -> dict[str, Any]:
        """The machine to log in to: host (`host:port` too) and user, asked when not given
        (the user defaults to ~/.ssh/config's for that host)."""
        from radops.rules import split_host_port, validate_ssh_name
        from radops.ssh.config import resolve_target

        host, port = split_host_port(ask(fields.get("hostname"), "Hostname", "--hostname", None),
                                     fields.get("port"))  # fmt: skip
        validate_ssh_name(host, "hostname")  # before ~/.ssh/config is applied (Match exec)
        default_user = resolve_target(host, port).username
        user = ask(fields.get("username"), "Username", "--username", default_user)
        return {**fields, "hostname": host, "port": port, "username": user or None}

    def registered(self, report: EngineReport | None, given: set[str]) -> Any:
        """A checked machine is saved with the platform its engine reported."""
        if report is None:
            return self.spec
        return self.spec.model_copy(update={"platform": report.platform})

    @property
    def conn(self) -> SSHConnection:
        """The one connection every step of a command goes through, opened on first use."""
        if self._conn is None:
            from radops.ssh.config import HostSpec
            from radops.ssh.remote import SSHConnection

            host, connect = self.spec.ssh, self.context.connect
            self._conn = SSHConnection(
                HostSpec(host.hostname, host.port, host.username, host.identity_file),
                self.context.known_hosts,
                connect.confirm_host_key,
                connect.trust_new_host_key or connect.trust_new_target_key,
                persist=self.context.ssh_persist,
                pinned=self._pinned(),
                trust_new_hops=connect.trust_new_host_key,
                prefix=self._prefix(),
            )
        return self._conn

    def _pinned(self) -> frozenset[str]:
        """Host keys trusted under any address, and the only ones trusted (none: the
        known-hosts files decide)."""
        return frozenset(self.context.connect.pinned_host_keys)

    def _prefix(self) -> tuple[str, ...]:
        """Words put before every remote command (none)."""
        return ()

    @property
    def images(self) -> LocalImages:
        """The local engine's images, where jobs for this executor are built."""
        if self._images is None:
            from radops.images.service import LocalImages

            self._images = LocalImages()
        return self._images

    def connect(self) -> None:
        self.conn.open()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._images is not None:
            self._images.close()
