"""A `Session`: one executor, opened by name for a command or a script.

It reads the config once and hands the executor what it needs (`ExecutorContext`), checks every
request against what the executor's kind offers before connecting, sends every call through one
connection, and explains an engine that does not answer when the kind can (a stopped VM).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from radops.errors import EngineUnreachableError, HostKeyError, lost_connection, unknown_host_key
from radops.executors.features import Feature
from radops.names import LOCAL_EXECUTOR_NAME
from radops.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    from radops.config import Settings
    from radops.executors.base import Executor
    from radops.executors.context import ExecutorContext
    from radops.executors.model import (
        ConnectOptions,
        EngineReport,
        Job,
        JobRequest,
        PortStream,
        PrunePlan,
        PruneResult,
        StopResult,
        Stream,
        TopReport,
    )
    from radops.progress import ProgressCallback
    from radops.specs import ExecutorSpec
    from radops.store import ExecutorStore


def context_for(
    spec: ExecutorSpec,
    settings: Settings,
    known_hosts: Path,
    connect: ConnectOptions | None = None,
    notices: ProgressCallback | None = None,
) -> ExecutorContext:
    """What an executor of `spec` needs from the config: resolved here, once."""
    from radops.executors.context import ExecutorContext
    from radops.executors.model import ConnectOptions
    from radops.plainconfig import resolve_setting

    persist = 0
    if hasattr(spec, "ssh"):  # only a kind that logs in reads (and so checks) ssh_persist
        from radops.ssh.mux import persist_seconds

        persist = persist_seconds(settings)
    return ExecutorContext(
        connect=connect or ConnectOptions(),
        settings=settings,
        known_hosts=known_hosts,
        registry=getattr(spec, "registry", None) or resolve_setting(settings, "registry"),
        ssh_persist=persist,
        notices=notices,
    )


def open_spec(
    spec: ExecutorSpec, connect: ConnectOptions | None = None, store: ExecutorStore | None = None
) -> Executor:
    """An executor for `spec` (registered or not), with the settings of the config file."""
    from radops.api.kinds import open_executor
    from radops.store import ExecutorStore

    store = store or ExecutorStore()
    return open_executor(spec, context_for(spec, store.load().settings, store.known_hosts, connect))


def open_session(
    name: str,
    connect: ConnectOptions | None = None,
    store: ExecutorStore | None = None,
    notices: ProgressCallback | None = None,
) -> Session:
    """The registered executor `name`, ready to use (it connects on first use). `notices`
    gets what the user should know beside results (a queued job's wait, a skipped folder)."""
    from radops.api.kinds import executor_class, open_executor
    from radops.store import ExecutorStore

    store = store or ExecutorStore()
    if name == LOCAL_EXECUTOR_NAME:
        # The built-in executor has no entry and reads no setting: the config file is not
        # parsed (its models are pydantic's, ~40 ms of every local command), only its folder's
        # owner checked, as for every command.
        from radops.executors.context import ExecutorContext
        from radops.executors.model import ConnectOptions

        store.check_owner()
        context = ExecutorContext(
            connect=connect or ConnectOptions(), known_hosts=store.known_hosts, notices=notices
        )
        return Session(executor_class(LOCAL_EXECUTOR_NAME)(None, context), store)
    spec, settings = store.open_entry(name)
    context = context_for(spec, settings, store.known_hosts, connect, notices)
    return Session(open_executor(spec, context), store)


CP_LOST_HINT = (
    "The copy did not finish; run the same cp again once the machine answers "
    "(`radops executors check {name}`)."
)


class Session:
    """What radops does with one executor; see radops.executors.base for each call's
    guarantees. A job is named by its id, its --name, or a unique prefix of its id."""

    def __init__(self, executor: Executor, store: ExecutorStore | None = None) -> None:
        self.executor = executor
        self.name = executor.name
        self.store = store

    @property
    def kind(self) -> str:
        return self.executor.kind

    def offers(self, feature: Feature) -> bool:
        return feature in self.executor.features

    def require(self, feature: Feature, asked: str | None = None) -> None:
        """Refuse (UsageError, before any connection) what this executor's kind cannot do."""
        self.executor.require(feature, self.name, asked)

    @contextlib.contextmanager
    def _explained(self, lost_hint: str | None = None) -> Iterator[None]:
        """An engine that does not answer, explained by the kind when it can say more; a
        connection lost midway, with `lost_hint` (what it means for what was under way); an
        unknown host key, with the command that trusts it (most commands lack the flag)."""
        hint = lost_hint.format(name=self.name) if lost_hint else None
        try:
            yield
        except EOFError as e:  # paramiko's, where no layer below made it ours (else: "aborted")
            raise lost_connection(self.name, hint) from e
        except HostKeyError as e:
            if not e.unknown_key:
                raise
            trust = f"trust it with `radops executors check {self.name} --accept-host-key`"
            raise unknown_host_key(e.message, trust) from e
        except EngineUnreachableError as e:
            why = self.executor.explain_unreachable(e)
            if why is not None:
                raise why from e
            if e.lost is not None and hint is not None:
                raise lost_connection(e.lost, hint) from e
            raise

    def connect(self) -> None:
        """Connect now (else on first use): a host-key question comes before any progress."""
        with self._explained():
            self.executor.connect()

    # The engine -----------------------------------------------------------------------------

    def check(self) -> EngineReport:
        """Connect and report the engine; a new platform is recorded (images are built for it)."""
        with self._explained():
            report = self.executor.check()
        spec = self.executor.spec
        platform = getattr(spec, "platform", report.platform)
        if self.store is not None and platform != report.platform:
            self.store.update_platform(self.name, report.platform)
        return report

    # Jobs -------------------------------------------------------------------------------------

    def run(self, request: JobRequest, progress: ProgressCallback | None = None) -> Job:
        """Build (or reuse) the image, ship it if needed, start the job; return it."""
        self.executor.check_request(request, self.name)
        with self._explained():
            self.executor.connect()
            return self.executor.run(request, progress or _quiet)

    def jobs(self, mine: bool = False) -> list[Job]:
        """The executor's radops jobs, newest first (`mine`: only this user's, from here)."""
        from radops.executors.model import this_user

        with self._explained():
            found = self.executor.jobs()
        if mine:
            me = this_user()
            found = [job for job in found if job.user == me]
        return found

    def get(self, job: str) -> Job:
        with self._explained():
            return self.executor.get(job)

    def logs(
        self,
        job: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> Iterator[tuple[Stream, bytes]]:
        """The job's output, byte for byte, as (stream, bytes) chunks as they come."""
        if timestamps:
            self.require(Feature.LOG_TIMESTAMPS)
        with self._explained():
            yield from self.executor.logs(job, follow=follow, tail=tail, timestamps=timestamps)

    def wait(self, job: str) -> int:
        """Block until the job ends; its exit code."""
        with self._explained():
            return self.executor.wait(job)

    def stop(self, job: str, timeout: int = 10) -> StopResult:
        with self._explained():
            return self.executor.stop(job, timeout)

    def remove(self, job: str, force: bool = False) -> Job:
        with self._explained():
            return self.executor.remove(job, force)

    def prune_plan(self, older_than: datetime | None = None, images: bool = False) -> PrunePlan:
        """Ended jobs to remove, and (`images`, where the engine keeps them) unused images."""
        images = images and self.offers(Feature.IMAGES)  # elsewhere there are none to prune
        with self._explained():
            return self.executor.prune_plan(older_than, images)

    def prune(self, plan: PrunePlan) -> PruneResult:
        with self._explained():
            return self.executor.prune(plan)

    # Files, commands and ports ------------------------------------------------------------------

    def copy_from(self, job: str, path: str) -> Iterator[bytes]:
        """`path` in the job as a tar stream (`docker cp JOB:PATH -`)."""
        self.require(Feature.CP)
        with self._explained(CP_LOST_HINT):
            yield from self.executor.copy_from(job, path)

    def copy_to(
        self, job: str, source: str | Path, dest: str, progress: ProgressCallback = no_progress
    ) -> None:
        """The local `source` at `dest` in the job, the bytes sent reported to `progress`."""
        self.require(Feature.CP)
        with self._explained(CP_LOST_HINT):
            self.executor.copy_to(job, source, dest, progress)

    def copy_archive_to(self, job: str, archive: Iterable[bytes], dest: str) -> None:
        self.require(Feature.CP)
        with self._explained(CP_LOST_HINT):
            self.executor.copy_archive_to(job, archive, dest)

    def exec(
        self, job: str, command: list[str], interactive: bool = False, tty: bool = False
    ) -> int:
        self.require(Feature.EXEC)
        with self._explained():
            return self.executor.exec(job, command, interactive=interactive, tty=tty)

    def port_opener(self, job: str, port: int) -> Callable[[], PortStream]:
        """A function opening a new stream to the job's `port` each time it is called."""
        self.require(Feature.FORWARD)
        with self._explained():
            return self.executor.port_opener(job, port)

    def top(self) -> TopReport:
        self.require(Feature.TOP)
        with self._explained():
            return self.executor.top()

    @contextlib.contextmanager
    def shell(self, keep: Path | None = None) -> Iterator[list[str]]:
        """The `ssh` command line of an interactive session on the executor's machine, valid
        while the block runs (with a pinned key, its own known-hosts file; kept in `keep`)."""
        self.require(Feature.CONNECT)
        with self._explained(), self.executor.shell(keep) as argv:
            yield argv

    # ------------------------------------------------------------------------------------------

    def close(self) -> None:
        self.executor.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quiet(line: str) -> None:
    """The progress callback of a caller that gave none."""
