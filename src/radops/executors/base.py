"""The Executor contract: what every executor kind guarantees to radops.api (and so the CLI).

A kind is one class: its name (`kind`), its settings (`spec_type`), the features it offers
(`features`) and the contract's methods. Callers ask `require`/`check_request` about a feature
before connecting, so a request a kind cannot honour is refused up front, with the reason.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from radops.errors import RadopsError, UsageError
from radops.executors.context import ExecutorContext
from radops.executors.features import Feature, request_features
from radops.executors.model import (
    EngineReport,
    Job,
    JobRequest,
    PortStream,
    PrunePlan,
    PruneResult,
    StopResult,
    Stream,
    check_new_name,
)
from radops.progress import ProgressCallback, no_progress

if TYPE_CHECKING:
    from radops.executors.model import TopReport
    from radops.specs import ExecutorSpec

E = TypeVar("E", bound="Executor")


class SpecType:
    """A kind's `spec_type`: its model in radops.specs by name, imported when read. pydantic
    and the config's models cost ~80 ms to import; a command that opens an executor from the
    config read without them (radops.plainconfig) never reads `spec_type`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> type[ExecutorSpec]:
        import radops.specs

        spec_type: type[ExecutorSpec] = getattr(radops.specs, self.name)
        return spec_type


# ask(value given, prompt, flag, default) -> the value, or the user's answer (radops.cli.prompts)
Ask = Callable[[str | None, str, str, str | None], str]


class Executor(abc.ABC):
    """An engine that runs radops jobs, as one kind reaches it.

    Every method raises a `radops.errors.RadopsError` (never a docker, paramiko or OS error):
    `NotFoundError` for an unknown job, `EngineUnreachableError` when the engine does not
    answer, `BuildError` when the image does not build. Implementations open their connection
    lazily and reuse it for every call until `close`. A job is named by its id, its `--name`,
    or a unique prefix of its id, in that order (as docker resolves containers).
    """

    kind: ClassVar[str]
    title: ClassVar[str]  # the kind as messages name it: "Slurm executors"
    spec_type: ClassVar[type[ExecutorSpec]]
    features: ClassVar[frozenset[Feature]]
    # Said with every refusal of a feature this kind lacks: why, and what to do instead.
    missing_hint: ClassVar[str | None] = None
    # What `executors remove` leaves behind, for the user to act on ({name}: the executor's).
    left_behind: ClassVar[str | None] = None

    def __init__(self, spec: Any, context: ExecutorContext | None = None) -> None:
        self.spec = spec
        self.name: str = spec.name
        self.context = context or ExecutorContext()

    # What the kind offers ---------------------------------------------------------------------

    @classmethod
    def refusal(cls, feature: Feature, asked: str, executor: str) -> UsageError:
        """The error for a request of `feature` (as `asked`, e.g. `--transfer ssh`)."""
        if feature is Feature.QUEUE:
            return UsageError(
                f"{asked}: only for executors with a queue (Slurm); {executor} is {cls.kind}"
            )
        return UsageError(f"{asked} is not available on {cls.title}", cls.missing_hint)

    @classmethod
    def require(cls, feature: Feature, executor: str, asked: str | None = None) -> None:
        """Refuse (UsageError) unless this kind offers `feature`."""
        if feature not in cls.features:
            raise cls.refusal(feature, asked or feature.value, executor)

    @classmethod
    def check_request(cls, request: JobRequest, executor: str) -> None:
        """Refuse a `run` request that asks for a feature this kind lacks."""
        for feature, asked in request_features(request).items():
            cls.require(feature, executor, asked)

    # Registering one ---------------------------------------------------------------------------

    @classmethod
    def ask_fields(cls, fields: dict[str, Any], ask: Ask) -> dict[str, Any]:
        """The settings of a new executor of this kind: `fields` (given as flags; the name is
        in already), with what is missing asked for. Default: nothing more to ask."""
        return fields

    def registered(self, report: EngineReport | None, given: set[str]) -> Any:
        """The spec to save for a new executor once `check` found `report` (None: not
        checked); `given`: the fields the user set. Default: the spec as it is."""
        return self.spec

    @property
    def notices(self) -> Callable[[str], None] | None:
        """Where to say what the user should know beside a result (ExecutorContext)."""
        return self.context.notices

    def check_new_name(self, name: str | None) -> None:
        """Refuse a `run --name` that an existing job's id starts with; lists the jobs only
        when there is a name. (An executor may fold the check into its run instead.)"""
        check_new_name(name, self.jobs, self.name)

    def explain_unreachable(self, error: RadopsError) -> RadopsError | None:
        """Why the engine did not answer, if the kind can tell more than `error` (a stopped
        VM, say); None: `error` says it all."""
        return None

    # The contract -------------------------------------------------------------------------------

    @abc.abstractmethod
    def check(self) -> EngineReport:
        """Connect and ask the engine who it is; raise a RadopsError saying why it is unusable."""

    @abc.abstractmethod
    def run(self, request: JobRequest, progress: ProgressCallback) -> Job:
        """Build (or reuse) the image for `request.context`, start the job detached, return it.

        The image is tagged by a hash of the build context, so an unchanged folder is neither
        rebuilt nor shipped again. `request.command` becomes the container's arguments exactly,
        as with `docker run IMAGE ARGS...`; nothing passes through a shell. `progress` receives
        one human-readable line per step or build output line. Callers have checked the
        request against `features` (`check_request`).
        """

    @abc.abstractmethod
    def jobs(self) -> list[Job]:
        """Every radops job on this executor's engine, newest first."""

    @abc.abstractmethod
    def get(self, job_id: str) -> Job:
        """The job `job_id` names, as every job command resolves it: the job with this id,
        else the one with this --name, else the one whose id starts with it."""

    @abc.abstractmethod
    def logs(
        self,
        job_id: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> Iterator[tuple[Stream, bytes]]:
        """The job's output as (stream, bytes) chunks, byte for byte as the job wrote it.

        Chunks are streamed as the engine sends them, so memory stays flat for any log size.
        With `follow`, the iterator ends when the job ends (what a queued job waits for goes
        to `notices`). `timestamps` needs Feature.LOG_TIMESTAMPS.
        """

    @abc.abstractmethod
    def wait(self, job_id: str) -> int:
        """Block until the job ends; return its exit code."""

    @abc.abstractmethod
    def stop(self, job_id: str, timeout: int = 10) -> StopResult:
        """Stop the job if it runs (SIGTERM, then SIGKILL after `timeout` seconds); return its
        state afterwards and whether it was running. A job that already ended is left as it
        is (no error)."""

    @abc.abstractmethod
    def remove(self, job_id: str, force: bool = False) -> Job:
        """Remove the job and with it its logs and exit code; return the job as it was. A
        running job is refused (UsageError) unless `force`, which stops it first."""

    @abc.abstractmethod
    def prune_plan(self, older_than: datetime | None = None, images: bool = False) -> PrunePlan:
        """The stopped jobs (created before `older_than`, if given) and, with `images`, the
        radops images that no container would use once those jobs are gone."""

    @abc.abstractmethod
    def prune(self, plan: PrunePlan) -> PruneResult:
        """Remove what `plan` names. Images that a container started meanwhile uses, or that
        are gone already, are left out of the result, never an error."""

    # Feature.CP ---------------------------------------------------------------------------------

    def copy_from(self, job_id: str, path: str) -> Iterator[bytes]:
        """`path` in the job's container (running or ended, mounted volumes included) as a tar
        stream, as `docker cp JOB:PATH -` writes it: one top-level entry, PATH's base name."""
        raise self.refusal(Feature.CP, Feature.CP.value, self.name)

    def copy_to(
        self, job_id: str, source: str | Path, dest: str, progress: ProgressCallback = no_progress
    ) -> None:
        """Copy the local file or folder `source` (as typed: `SRC/.` is a folder's contents) to
        `dest` in the job's container, with `docker cp`'s rules (into `dest` if it is a folder
        there, else as `dest`); the bytes sent so far reported through `progress`."""
        raise self.refusal(Feature.CP, Feature.CP.value, self.name)

    def copy_archive_to(self, job_id: str, archive: Iterable[bytes], dest: str) -> None:
        """Extract a tar stream into the folder `dest` in the job's container (`docker cp -`)."""
        raise self.refusal(Feature.CP, Feature.CP.value, self.name)

    # Feature.EXEC, FORWARD, TOP, CONNECT --------------------------------------------------------

    def exec(
        self, job_id: str, command: list[str], interactive: bool = False, tty: bool = False
    ) -> int:
        """Run `command` in the running job, like `docker exec`, attached to this process's
        stdin (with `interactive`), stdout and stderr; with `tty`, on a terminal (window size,
        Ctrl-C to the process). Return the command's exit code. A job that is not running is a
        UsageError."""
        raise self.refusal(Feature.EXEC, Feature.EXEC.value, self.name)

    def port_opener(self, job_id: str, port: int) -> Callable[[], PortStream]:
        """A function that opens a new TCP stream to `port` of the running job each time it is
        called (for `forward`): straight to the container on this machine, through the SSH
        connection on another. Errors: UsageError if the job is not running or has no network."""
        raise self.refusal(Feature.FORWARD, Feature.FORWARD.value, self.name)

    def top(self) -> TopReport:
        """GPU use and memory per GPU (`nvidia-smi`; None without it) and CPU and memory per
        running job (`docker stats --no-stream`)."""
        raise self.refusal(Feature.TOP, Feature.TOP.value, self.name)

    def shell(self, keep: Path | None = None) -> AbstractContextManager[list[str]]:
        """The OpenSSH command line of an interactive session on the executor's machine, valid
        while the block runs (a pinned key's known-hosts file lives that long, or in `keep`)."""
        raise self.refusal(Feature.CONNECT, Feature.CONNECT.value, self.name)

    def delete_machine(self, progress: ProgressCallback) -> bool:
        """Delete the VM radops made for this executor (already gone is fine), and the
        executor with it; True if a VM was deleted."""
        raise self.refusal(Feature.OWN_VM, Feature.OWN_VM.value, self.name)

    # Connection -------------------------------------------------------------------------------

    def connect(self) -> None:  # noqa: B027 - optional hook, for executors with a connection
        """Open the connection now (it is otherwise opened on first use): a question about an
        unknown host key is then asked before any progress display starts."""

    def close(self) -> None:  # noqa: B027 - optional hook, not every executor holds a connection
        """Release the connection; the executor must not be used afterwards."""

    def __enter__(self: E) -> E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
