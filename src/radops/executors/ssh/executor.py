"""The SSH executor: the docker CLI on a remote machine, driven over one SSH connection."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radops.errors import NotFoundError, RadopsError, UsageError
from radops.executors.base import Ask, SpecType
from radops.executors.context import ExecutorContext
from radops.executors.docker import argv as argv_for
from radops.executors.docker.gpus import (
    until_free,
    with_jobs,
)
from radops.executors.docker.labels import (
    RESTARTS_FORMAT,
    add_restarts,
    job_from_inspect,
    job_from_summary,
    job_not_found,
    match_job,
    newest_first,
)
from radops.executors.docker.options import parse_gpus
from radops.executors.docker.prune import (
    exec_flags,
    job_address,
    running_job,
    running_refused,
    stopped_jobs,
)
from radops.executors.features import ALL_FEATURES, Feature
from radops.executors.header import Header, HeaderReader
from radops.executors.login import LoginExecutor
from radops.executors.model import (
    CONTAINER_PREFIX,
    EngineReport,
    Job,
    JobRequest,
    PortStream,
    PrunePlan,
    PruneResult,
    StopResult,
    Stream,
    container_name,
    new_job_id,
)
from radops.executors.ssh import attached, scripts
from radops.executors.ssh.docker import RemoteDocker
from radops.executors.ssh.gpus import remote_gpu_state
from radops.executors.ssh.starting import start_job
from radops.progress import ProgressCallback, no_progress
from radops.rules import DEFAULT_DOCKER_PATH

if TYPE_CHECKING:
    from radops.executors.model import TopReport
    from radops.executors.ssh.shipping import Shipping
    from radops.specs import SSHExecutorSpec

_JOB_ID = re.compile(r"^[0-9a-f]{12}$")


class SSHExecutor(LoginExecutor):
    """Jobs on a remote engine: images built here, shipped by registry or over SSH, run there.

    Every step of a command goes through one SSH connection, opened on first use.
    """

    kind = "ssh"
    title = "SSH executors"
    spec_type = SpecType("SSHExecutorSpec")
    features = ALL_FEATURES - {Feature.QUEUE}

    spec: SSHExecutorSpec

    def __init__(self, spec: Any, context: ExecutorContext | None = None) -> None:
        super().__init__(spec, context)
        self._docker: RemoteDocker | None = None

    @classmethod
    def ask_fields(cls, fields: dict[str, Any], ask: Ask) -> dict[str, Any]:
        fields = super().ask_fields(fields, ask)
        path = ask(fields.get("docker_path"), "Path to docker on the remote machine",
                   "--docker-path", DEFAULT_DOCKER_PATH)  # fmt: skip
        return {**fields, "docker_path": path}

    # Connection ------------------------------------------------------------------------------

    @property
    def docker(self) -> RemoteDocker:
        """The remote docker CLI, over `conn`."""
        if self._docker is None:
            self._docker = RemoteDocker(self.conn, self.spec.docker_path, self.name)
        return self._docker

    @contextlib.contextmanager
    def shell(self, keep: Path | None = None) -> Iterator[list[str]]:
        """The OpenSSH command line for an interactive session on this machine, valid while
        the block runs. With a pinned key, radops checks the machine first and OpenSSH then
        trusts only the key radops checked: a one-off file holding it alone (or `keep`, left
        for later), never radops' known_hosts, where an older key of another type for the same
        address could let another machine in."""
        from radops.ssh import openssh

        if not self._pinned():
            yield self.conn.target.ssh_argv(self.context.known_hosts)
            return
        self.conn.direct.open()  # refuses any key but the pinned one
        with openssh.pinned_known_hosts(self.conn.host_key(), keep) as known_hosts:
            yield openssh.pinned_argv(self.conn.target, known_hosts)

    def host_key_fingerprint(self) -> str:
        """The SHA256 fingerprint of the host key this connection verified."""
        return self.conn.host_key_fingerprint()

    # Contract ----------------------------------------------------------------------------------

    def check(self) -> EngineReport:
        # A check logs in itself (host key, login), never through a shared connection that
        # logged in minutes ago, and that connection then makes way for a new one.
        self.conn.login()
        out = self.docker("version", "--format", "{{json .Server}}", what="docker version")
        try:
            server: dict[str, Any] = json.loads(out)
        except ValueError as e:
            raise RadopsError(f"unexpected `docker version` output from {self.name}") from e
        if not server:
            raise self.docker.engine_down()
        status, smi, _ = self.conn.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
        gpus = [g.strip() for g in smi.decode(errors="replace").splitlines() if g.strip()]
        state = remote_gpu_state(self.docker, self.name) if status == 0 and gpus else None
        return EngineReport(
            executor=self.name,
            server_version=str(server.get("Version", "?")),
            os=str(server.get("Os", "?")),
            architecture=str(server.get("Arch", "?")),
            gpus=gpus if status == 0 else [],
            gpus_free=None if state is None else state.free(),
        )

    def run(self, request: JobRequest, progress: ProgressCallback) -> Job:
        from radops.executors.ssh.build import RemoteBuild

        if any("\n" in v for v in request.env.values()):
            raise UsageError("--env values sent to an SSH executor cannot contain newlines")
        # Parsed before building, so a typo costs no build.
        gpus = parse_gpus(request.gpus) if request.gpus else None
        build_on = request.build_on or self.spec.build or "local"
        if build_on == "remote":
            if request.transfer != "auto":
                raise UsageError(
                    f"--transfer {request.transfer} does not apply with --build remote: the "
                    "image is built where it runs, only the build context travels"
                )
            # Built by the executor's engine for itself: no platform to name in the tag.
            plan = self.images.plan(request.context, request.dockerfile, None, request.build)
            shipping: Shipping = RemoteBuild(self.images, self.docker)
        else:
            plan = self.images.plan(
                request.context, request.dockerfile, self.spec.platform, request.build
            )
            shipping = self._shipping(request.transfer)
        shipping.check(plan)
        job_id = new_job_id()

        def start(gpus: dict[str, Any] | None) -> Job:
            return start_job(self.docker, self.notices, job_id, request, gpus, plan, shipping,
                             progress)  # fmt: skip

        if gpus is None:
            return start(None)
        return until_free(lambda: start(gpus), request.gpu_wait, progress)

    def _shipping(self, transfer: str) -> Shipping:
        """How an image built here gets there (`--transfer`), with the registry's pull
        credential when one is set."""
        from radops.executors.ssh.tunnel import choose_shipping
        from radops.images.registry import pull_credential, registry_server

        registry = self.context.registry
        server = registry_server(registry) if registry else None
        credential = pull_credential(self.context.settings, server) if server else None
        return choose_shipping(transfer, registry, self.images, self.docker, credential)

    def jobs(self) -> list[Job]:
        out = self.docker(*argv_for.ps_argv("")[1:], what="listing jobs")
        jobs = [job_from_summary(row, self.name) for row in argv_for.parse_ps(out)]
        if restarting := [container_name(job.id) for job in jobs if job.restart_policy]:
            # The list has no restart counts: one more round trip, for jobs that may restart.
            argv = self.docker.argv("inspect", "--format", RESTARTS_FORMAT, *restarting)
            _, counts, _ = self.conn.run(argv)  # a job removed meanwhile: no count
            jobs = add_restarts(jobs, counts.decode(errors="replace"))
        return newest_first(jobs)

    def _full_id(self, job_id: str) -> str:
        """The job's full id: as given, or the one job whose id starts with it."""
        if _JOB_ID.fullmatch(job_id):
            return job_id
        return match_job(job_id, self.jobs(), self.name)

    def _inspect(self, job_id: str) -> dict[str, Any]:
        job_id = self._full_id(job_id)
        status, out, err = self.conn.run(self.docker.argv("inspect", container_name(job_id)))
        if status != 0:
            raise self._lookup_error(job_id, status, err)
        data: dict[str, Any] = json.loads(out)[0]
        return data

    def _lookup_error(
        self, job_id: str, status: int, stderr: bytes, what: str = "looking up the job"
    ) -> RadopsError:
        error = self.docker.error(status, stderr, what)
        return job_not_found(job_id, self.name) if isinstance(error, NotFoundError) else error

    def get(self, job_id: str) -> Job:
        return job_from_inspect(self._inspect(job_id), self.name)

    def logs(
        self,
        job_id: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> Iterator[tuple[Stream, bytes]]:
        job_id = self._full_id(job_id)
        argv = scripts.checked_logs_argv(
            self.spec.docker_path, container_name(job_id), follow, tail, timestamps
        )
        reader = HeaderReader()
        for stream, data in self.conn.stream(argv):
            if stream == "exit":
                if reader.header is None:  # the lookup failed (or the script itself did)
                    raise self._script_error(job_id, reader, data)
                if data != b"0":
                    raise RadopsError(
                        f"`docker logs` on {self.name} exited with status {data.decode()}"
                    )
                return
            yield from reader.feed(stream, data)

    def _script_error(self, job_id: str, reader: HeaderReader, exit_status: bytes) -> RadopsError:
        """Why the logs script stopped before its header said ok."""
        found = Header.find(reader.received)
        if found is None:  # no header: `sh` itself failed
            status = int(exit_status) if exit_status.isdigit() else 1
            return self.docker.error(status, b"".join(reader.held), "reading the logs")
        return self._lookup_error(job_id, found.status, found.rest)

    def wait(self, job_id: str) -> int:
        name = self._inspect(job_id)["Name"].lstrip("/")
        out = self.docker("wait", name, what="waiting for the job")
        return int(out.strip() or 0)

    def copy_from(self, job_id: str, path: str) -> Iterator[bytes]:
        job_id = self._full_id(job_id)
        argv = self.docker.argv("cp", f"{container_name(job_id)}:{path}", "-")
        errors: list[bytes] = []
        for stream, data in self.conn.stream(argv):
            if stream == "stdout":
                yield data
            elif stream == "stderr":
                errors.append(data)
            elif data != b"0":
                raise self.docker.copy_error(job_id, int(data), b"".join(errors), path)

    def copy_to(
        self, job_id: str, source: str | Path, dest: str, progress: ProgressCallback = no_progress
    ) -> None:
        from radops.executors.docker.archive import content_size, local_source, pack
        from radops.progress import BRIEF_S, metered, transfer_meter

        local = local_source(source)
        job_id = self._full_id(job_id)
        argv = scripts.copy_to_argv(
            self.spec.docker_path, container_name(job_id), local.name, dest, local.contents
        )
        label = f"Copying {local.path} to job {job_id[:12]}"
        meter = transfer_meter(progress, label, content_size(local), estimate=True, brief=BRIEF_S)
        status, output = self.conn.run_with_input(argv, metered(pack(local), meter))
        if status != 0:
            raise self._copy_in_error(job_id, status, output, dest)

    def copy_archive_to(self, job_id: str, archive: Iterable[bytes], dest: str) -> None:
        job_id = self._full_id(job_id)
        argv = self.docker.argv("cp", "-", f"{container_name(job_id)}:{dest}")
        status, output = self.conn.run_with_input(argv, archive)
        if status != 0:
            raise self._copy_in_error(job_id, status, output, dest)

    def _copy_in_error(self, job_id: str, status: int, output: bytes, dest: str) -> RadopsError:
        """As every kind says it (a missing folder), else as the docker CLI's failure."""
        from radops.executors.docker.archive import copy_in_refused

        text = output.decode(errors="replace")
        refused = copy_in_refused(text, job_id, self.name, dest)
        return refused or self.docker.copy_error(job_id, status, output, dest)

    def exec(
        self, job_id: str, command: list[str], interactive: bool = False, tty: bool = False
    ) -> int:
        job = running_job(self._inspect(job_id), self.name)
        argv = self.docker.argv(
            "exec", *exec_flags(interactive, tty), container_name(job.id), *command
        )
        if tty:
            return self._exec_on_terminal(argv)
        if interactive:
            return attached.with_stdin(self.conn, argv)
        return attached.without_stdin(self.conn, argv)

    def _exec_on_terminal(self, argv: list[str]) -> int:
        """OpenSSH's client with a pty (`ssh -t`): it carries the window size and its changes,
        and the terminal's keys (Ctrl-C included) to the command. Host keys as `connect`."""
        from radops.ssh.connection import command_line
        from radops.ssh.openssh import run_foreground

        with self.shell() as ssh:
            # Errors (a refused host key) but not notices ("Connection to ... closed.").
            quiet = ["-o", "LogLevel=ERROR"]
            return run_foreground([ssh[0], "-t", *quiet, *ssh[1:], command_line(argv)])

    def port_opener(self, job_id: str, port: int) -> Callable[[], PortStream]:
        data = self._inspect(job_id)
        address = job_address(data, self.name)
        direct = self.conn.direct  # a shared connection carries commands, not tunnels
        direct.open()

        def open_stream() -> PortStream:
            return direct.open_tunnel(address, port)

        return open_stream

    def top(self) -> TopReport:
        from radops.executors.docker.top import GPU_QUERY, parse_gpus, parse_stats
        from radops.executors.model import TopReport

        out = self.docker.run_script(
            scripts.top_argv(self.spec.docker_path, GPU_QUERY), "reading GPU and job use"
        ).decode(errors="replace")
        gpu_part, _, stats = out.partition("radops:stats\n")
        header, _, gpu_lines = gpu_part.partition("\n")
        gpus = parse_gpus(gpu_lines) if header.strip() == "radops:gpus 0" else None
        if gpus:  # which job is on which GPU
            gpus = with_jobs(gpus, self.jobs())
        return TopReport(self.name, gpus, parse_stats(stats, CONTAINER_PREFIX))

    def remove(self, job_id: str, force: bool = False) -> Job:
        data = self._inspect(job_id)
        job = job_from_inspect(data, self.name)
        if data["State"]["Running"] and not force:
            raise running_refused(job, self.name)
        argv = ["rm", *(["--force"] if force else []), container_name(job.id)]
        status, _, err = self.conn.run(self.docker.argv(*argv))
        if status != 0:
            raise self._lookup_error(job.id, status, err, "removing the job")
        return job

    def prune_plan(self, older_than: datetime | None = None, images: bool = False) -> PrunePlan:
        jobs = stopped_jobs(self.jobs(), older_than)
        if not images:
            return PrunePlan(jobs, [])
        out = self.docker.run_script(
            scripts.prune_look_argv(self.spec.docker_path), "listing containers and images"
        )
        going = {"/" + container_name(job.id) for job in jobs}
        return PrunePlan(jobs, scripts.unused_images(out, going))

    def prune(self, plan: PrunePlan) -> PruneResult:
        names = [container_name(job.id) for job in plan.jobs]
        refs = [ref for image in plan.images for ref in image.refs]
        out = self.docker.run_script(
            scripts.prune_argv(self.spec.docker_path, names, refs), "pruning"
        )
        return scripts.pruned(out, plan)

    def stop(self, job_id: str, timeout: int = 10) -> StopResult:
        job_id = self._full_id(job_id)
        argv = scripts.stop_argv(self.spec.docker_path, container_name(job_id), timeout)
        status, out, err = self.conn.run(argv)
        header = Header.find(out)
        if header is None:  # `sh` itself failed
            raise self.docker.error(status, err, "stopping the job")
        if not header.ok:
            raise self._lookup_error(job_id, header.status, header.rest, "stopping the job")
        running, _, inspect = header.rest.partition(b"\n")
        job = job_from_inspect(json.loads(inspect)[0], self.name)
        return StopResult(job, was_running=running.strip() == b"true")
