"""What the executor kinds reached over SSH share: the machine radops logs in to (an SSH
host's engine, a Slurm login node), one connection to it opened on first use, the shared
settings, and the local images built for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from radops.executors.base import ConnectOptions, Executor

if TYPE_CHECKING:
    from radops.config import Settings, SSHExecutorSpec
    from radops.images.service import LocalImages
    from radops.ssh.remote import SSHConnection


class LoginExecutor(Executor):
    """An executor behind one SSH login. Kinds say which host keys are pinned (`_pinned`)
    and what every remote command is prefixed with (`_prefix`)."""

    def __init__(self, spec: SSHExecutorSpec, options: ConnectOptions | None = None) -> None:
        super().__init__(spec.name)
        self.spec = spec
        self.options = options or ConnectOptions()
        self._conn: SSHConnection | None = None
        self._settings: Settings | None = None
        self._images: LocalImages | None = None

    @property
    def settings(self) -> Settings:
        """The shared settings (registry, ssh_persist), read once per command."""
        if self._settings is None:
            from radops.store import ExecutorStore

            self._settings = ExecutorStore().load().settings
        return self._settings

    @property
    def conn(self) -> SSHConnection:
        """The one connection every step of a command goes through, opened on first use."""
        if self._conn is None:
            from radops.ssh.config import HostSpec
            from radops.ssh.mux import persist_seconds
            from radops.ssh.remote import SSHConnection
            from radops.store import config_dir

            spec = self.spec
            self._conn = SSHConnection(
                HostSpec(spec.hostname, spec.port, spec.username, spec.identity_file),
                config_dir() / "known_hosts",
                self.options.confirm_host_key,
                self.options.trust_new_host_key or self.options.trust_new_target_key,
                persist=persist_seconds(self.settings),
                pinned=self._pinned(),
                trust_new_hops=self.options.trust_new_host_key,
                prefix=self._prefix(),
            )
        return self._conn

    def _pinned(self) -> frozenset[str]:
        """Host keys trusted under any address, and the only ones trusted (none: the
        known-hosts files decide)."""
        return frozenset(self.options.pinned_host_keys)

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
