"""The SSH executor: the docker CLI on a remote machine, driven over one SSH connection."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from radops.config import LocalExecutorSpec, resolve_setting
from radops.errors import EngineUnreachableError, NotFoundError, RadopsError, UsageError
from radops.executors import _docker_argv as argv_for
from radops.executors._docker_options import parse_gpus
from radops.executors._labels import (
    job_from_inspect,
    job_from_labels,
    job_from_summary,
    job_labels,
    job_not_found,
    match_job_id,
    newest_first,
)
from radops.executors.base import (
    EngineReport,
    Executor,
    Job,
    JobRequest,
    ProgressCallback,
    Stream,
    container_name,
    new_job_id,
)

if TYPE_CHECKING:
    from radops.config import Settings, SSHExecutorSpec
    from radops.executors.local import LocalExecutor
    from radops.ssh import ConfirmHostKey, SSHConnection

TRANSFERS = ("auto", "registry", "ssh")
_JOB_ID = re.compile(r"^[0-9a-f]{12}$")
_AUTH_FAILURE = re.compile(r"unauthorized|denied|authentication required|no basic auth", re.I)


class SSHExecutor(Executor):
    """Jobs on a remote engine: images built here, shipped by registry or over SSH, run there.

    Every step of a command goes through one SSH connection, opened on first use.
    """

    kind = "ssh"

    def __init__(self, spec: SSHExecutorSpec) -> None:
        super().__init__(spec.name)
        self.spec = spec
        self.transfer = "auto"
        self._conn: SSHConnection | None = None
        self._settings: Settings | None = None
        self._local: LocalExecutor | None = None

    # Connection ------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The shared settings (registry, ssh_persist), read once per command."""
        if self._settings is None:
            from radops.store import ExecutorStore

            self._settings = ExecutorStore().load().settings
        return self._settings

    @property
    def conn(self) -> SSHConnection:
        if self._conn is None:
            from radops.ssh import HostSpec, SSHConnection
            from radops.ssh_mux import persist_seconds
            from radops.store import config_dir

            host = HostSpec(
                self.spec.hostname, self.spec.port, self.spec.username, self.spec.identity_file
            )
            self._conn = SSHConnection(
                host,
                config_dir() / "known_hosts",
                self._confirm(),
                self.trust_new_host_key,
                persist=persist_seconds(self.settings),
            )
        return self._conn

    def _confirm(self) -> ConfirmHostKey | None:
        """A VM radops created has a pinned key: that key is trusted under any new address."""
        pinned = getattr(self.spec, "host_key_fingerprint", None)
        if pinned is None:
            return self.confirm_host_key
        ask = self.confirm_host_key

        def confirm(host: str, key_type: str, fingerprint: str) -> bool:
            return fingerprint == pinned or (ask is not None and ask(host, key_type, fingerprint))

        return confirm

    def connect(self) -> None:
        self.conn.open()

    def host_key_fingerprint(self) -> str:
        """The SHA256 fingerprint of the host key this connection verified."""
        from radops.ssh import fingerprint

        transport = self.conn.client.get_transport()
        assert transport is not None
        return fingerprint(transport.get_remote_server_key())

    @property
    def local(self) -> LocalExecutor:
        if self._local is None:
            from radops.executors.local import LocalExecutor

            self._local = LocalExecutor(LocalExecutorSpec())
        return self._local

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._local is not None:
            self._local.close()

    def _docker(self, *args: str, stdin: bytes | None = None, what: str) -> bytes:
        """Run `docker ARGS` on the remote host; return stdout or raise a RadopsError."""
        status, out, err = self.conn.run([self.spec.docker_path, *args], stdin=stdin)
        if status != 0:
            raise self._docker_error(status, err, what)
        return out

    def _docker_error(self, status: int, stderr: bytes, what: str) -> RadopsError:
        text = stderr.decode(errors="replace").strip()
        line = argv_for.error_line(text) or f"exit status {status}"
        host = self.conn.target.display
        if status in (126, 127) and "Error response from daemon" not in text:
            # The remote shell could not find or run docker (docker itself also exits 126/127
            # when the job's command cannot be run, but then the daemon says so).
            return RadopsError(
                f"docker not found at {self.spec.docker_path} on {host}",
                "Give the right path with --docker-path (`which docker` on the machine).",
            )
        if "permission denied" in text.lower() and "docker" in text.lower() and ".sock" in text:
            return RadopsError(
                f"permission denied on the Docker socket on {host} for {self.conn.target.username}",
                "Add the user to the `docker` group on the machine, then log in again "
                f"(`radops executors check {self.name}` renews radops' shared connection).",
            )
        if "Cannot connect to the Docker daemon" in text:
            return EngineUnreachableError(
                f"the Docker engine on {host} is not running",
                "Start it there (`sudo systemctl start docker`).",
            )
        if "No such container" in text or "No such object" in text:
            return NotFoundError(f"{what}: {line}")
        return RadopsError(f"{what} on {self.name}: {line}")

    # Contract ----------------------------------------------------------------------------------

    def check(self) -> EngineReport:
        # A check connects itself (host key, login), never through a shared connection that
        # logged in minutes ago, and that connection then makes way for a new one.
        self.conn.client  # noqa: B018 - opening it is the point
        self.conn.retire_shared()
        out = self._docker("version", "--format", "{{json .Server}}", what="docker version")
        try:
            server: dict[str, Any] = json.loads(out)
        except ValueError as e:
            raise RadopsError(f"unexpected `docker version` output from {self.name}") from e
        if not server:
            raise self._docker_error(1, b"Cannot connect to the Docker daemon", "docker version")
        status, smi, _ = self.conn.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
        gpus = [g.strip() for g in smi.decode(errors="replace").splitlines() if g.strip()]
        return EngineReport(
            executor=self.name,
            server_version=str(server.get("Version", "?")),
            os=str(server.get("Os", "?")),
            architecture=str(server.get("Arch", "?")),
            gpus=gpus if status == 0 else [],
        )

    def run(self, request: JobRequest, progress: ProgressCallback) -> Job:
        if any("\n" in v for v in request.env.values()):
            raise UsageError("--env values sent to an SSH executor cannot contain newlines")
        if request.gpus:
            parse_gpus(request.gpus)  # docker gets the value as-is, but a typo costs no build
        plan = self.local.plan_image(request, self.spec.platform)
        transfer, registry = self._transfer_mode()
        image = (
            f"{registry.rstrip('/')}/{plan.tag}"
            if transfer == "registry" and registry
            else plan.tag
        )
        job_id = new_job_id()
        labels = job_labels(job_id, self.name, image, request)
        argv = argv_for.run_argv(
            self.spec.docker_path,
            container_name(job_id),
            labels,
            image,
            request.command,
            request.gpus,
            env_from_stdin=bool(request.env),
        )
        # Tags are content hashes, so a remote that has the tag has this exact image: try to run
        # first (one round trip) and ship only when the engine says it lacks the image.
        env = argv_for.env_file(request.env)
        status, _, err = self.conn.run(argv, stdin=env)
        if status != 0 and b"No such image" in err:
            self.local.ensure_image(plan, progress)
            if transfer == "registry":
                status, err = self._push_pull_and_run(plan.tag, image, argv, env, progress)
            else:
                progress(f"Sending {plan.tag} to {self.name} over SSH")
                self._send_over_ssh(plan.tag)
                status, _, err = self.conn.run(argv, stdin=env)
        elif status == 0:
            progress(f"{self.name} already has {image}; nothing to ship")
        if status != 0:
            # docker leaves a Created container when the start fails: a job that never ran
            # must not show up in `jobs`.
            self.conn.run([self.spec.docker_path, "rm", "--force", container_name(job_id)])
            raise self._docker_error(status, err, "starting the job")
        progress(f"Started job {job_id} on {self.name}")
        return job_from_labels(labels, self.name, "running")

    def jobs(self) -> list[Job]:
        out = self._docker(*argv_for.ps_argv("")[1:], what="listing jobs")
        jobs = [job_from_summary(row, self.name) for row in argv_for.parse_ps(out)]
        return newest_first(jobs)

    def _inspect(self, job_id: str) -> dict[str, Any]:
        if not _JOB_ID.fullmatch(job_id):
            job_id = match_job_id(job_id, [j.id for j in self.jobs()], self.name)
        status, out, err = self.conn.run([self.spec.docker_path, "inspect", container_name(job_id)])
        if status != 0:
            error = self._docker_error(status, err, "looking up the job")
            raise job_not_found(job_id, self.name) if isinstance(error, NotFoundError) else error
        data: dict[str, Any] = json.loads(out)[0]
        return data

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
        if not _JOB_ID.fullmatch(job_id):
            job_id = match_job_id(job_id, [j.id for j in self.jobs()], self.name)
        argv = argv_for.checked_logs_argv(
            self.spec.docker_path, container_name(job_id), follow, tail, timestamps
        )
        header: bytes | None = b""  # None once the script's header line has been read
        held: list[bytes] = []  # the job's stderr that overtook the header
        for stream, data in self.conn.stream(argv):
            if stream == "exit":
                if header is not None:  # the lookup failed (or the script itself did)
                    raise self._logs_lookup_error(job_id, header, held, data)
                if data != b"0":
                    raise RadopsError(
                        f"`docker logs` on {self.name} exited with status {data.decode()}"
                    )
                return
            if header is None:
                yield ("stderr" if stream == "stderr" else "stdout"), data
            elif stream == "stderr":
                held.append(data)
            else:
                header += data
                found = _script_header(header)
                if found is None or found[0] != argv_for.SCRIPT_OK:
                    continue  # an error's whole text arrives before the script exits
                header = None
                for chunk in held:
                    yield "stderr", chunk
                if found[1]:
                    yield "stdout", found[1]

    def _logs_lookup_error(
        self, job_id: str, received: bytes, stderr: list[bytes], exit_status: bytes
    ) -> RadopsError:
        found = _script_header(received)
        if found is None:  # no header: `sh` itself failed
            status = int(exit_status) if exit_status.isdigit() else 1
            return self._docker_error(status, b"".join(stderr), "reading the logs")
        code = found[0][len(argv_for.SCRIPT_ERROR) :].strip()
        status = int(code) if code.isdigit() else 1
        error = self._docker_error(status, found[1], "looking up the job")
        return job_not_found(job_id, self.name) if isinstance(error, NotFoundError) else error

    def wait(self, job_id: str) -> int:
        name = self._inspect(job_id)["Name"].lstrip("/")
        out = self._docker("wait", name, what="waiting for the job")
        return int(out.strip() or 0)

    def stop(self, job_id: str, timeout: int = 10) -> Job:
        name = self._inspect(job_id)["Name"].lstrip("/")
        self._docker("stop", "--time", str(timeout), name, what="stopping the job")
        return self.get(job_id)

    # Shipping images ---------------------------------------------------------------------------

    def registry(self) -> str | None:
        return self.spec.registry or resolve_setting(self.settings, "registry")

    def _transfer_mode(self) -> tuple[str, str | None]:
        registry = self.registry()
        transfer = self.transfer if self.transfer != "auto" else "registry" if registry else "ssh"
        if transfer == "registry" and not registry:
            raise UsageError(
                "no registry configured for --transfer registry",
                "Set one: `radops config set registry ghcr.io/OWNER` (or RADOPS_REGISTRY).",
            )
        return transfer, registry

    def _send_over_ssh(self, local_tag: str) -> None:
        from radops.executors import _transfer

        _transfer.send_over_ssh(self.local.api, self.conn, self.spec.docker_path, local_tag)

    def _push_pull_and_run(
        self,
        local_tag: str,
        ref: str,
        run_argv: list[str],
        env: bytes,
        progress: ProgressCallback,
    ) -> tuple[int, bytes]:
        """Push `local_tag` as `ref`, then pull it and start the job in one remote command
        (the `docker run` status and stderr); a pull the registry denies is retried once
        logged in."""
        from radops.executors import _transfer

        _transfer.push(self.local.api, local_tag, ref, progress)
        progress(f"Pulling {ref} on {self.name}")
        docker = self.spec.docker_path
        script = argv_for.pull_then_run_argv(docker, ref, run_argv)
        status, out, err = self.conn.run(script, stdin=env)
        found = _script_header(out)
        if found is None or found[0] == argv_for.SCRIPT_OK:
            return status, err  # docker run's (or sh's own failure)
        code = found[0][len(argv_for.SCRIPT_ERROR) :].strip()
        pull_status, pull_err = (int(code) if code.isdigit() else 1), found[1]
        if _AUTH_FAILURE.search(pull_err.decode(errors="replace")):
            pull_status, pull_err = self._pull_with_login(ref, progress) or (pull_status, pull_err)
        if pull_status != 0:
            raise self._docker_error(pull_status, pull_err, f"pulling {ref}")
        status, _, err = self.conn.run(run_argv, stdin=env)
        return status, err

    def _pull_with_login(self, ref: str, progress: ProgressCallback) -> tuple[int, bytes] | None:
        """Pull with this machine's registry credentials, logged in through stdin into a
        throw-away docker config, so no token stays behind on the remote machine."""
        from radops.executors import _transfer

        login = _transfer.registry_login(self.local.api, ref)
        if login is None:
            return None
        server, username, secret = login
        progress(f"Logging {self.name} in to {server} for this pull")
        folder = self._docker_tmpdir()
        docker = [self.spec.docker_path, "--config", folder]
        try:
            login_argv = [*docker, "login", server, "--username", username, "--password-stdin"]
            status, _, err = self.conn.run(login_argv, stdin=secret.encode())
            if status != 0:
                raise self._docker_error(status, err, f"docker login {server}")
            status, _, err = self.conn.run([*docker, "pull", "--quiet", ref])
            return status, err
        finally:
            self.conn.run(["rm", "-rf", "--", folder])

    def _docker_tmpdir(self) -> str:
        status, out, err = self.conn.run(["mktemp", "-d", "-t", "radops-docker.XXXXXXXX"])
        folder = out.decode().strip()
        if status != 0 or not folder.startswith("/"):
            raise RadopsError(
                f"cannot make a temporary folder on {self.name}: {err.decode().strip()}"
            )
        return folder


def _script_header(received: bytes) -> tuple[bytes, bytes] | None:
    """(header line, what follows it) once a two-step script's header has arrived, else None.

    Lines before it (a login shell that prints a banner) are dropped.
    """
    start = 0
    while (end := received.find(b"\n", start)) != -1:
        line = received[start:end]
        if line == argv_for.SCRIPT_OK or line.startswith(argv_for.SCRIPT_ERROR):
            return line, received[end + 1 :]
        start = end + 1
    return None
