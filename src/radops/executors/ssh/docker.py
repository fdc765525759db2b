"""The docker CLI on a remote machine, over an SSH connection, with its failures classified."""

from __future__ import annotations

from typing import TYPE_CHECKING

from radops.errors import EngineUnreachableError, NotFoundError, RadopsError, UsageError
from radops.executors.docker.argv import error_line
from radops.executors.docker.labels import job_not_found
from radops.executors.docker.options import NO_GPU_DRIVER, no_gpu_runtime
from radops.ssh.connection import NO_BASE64

if TYPE_CHECKING:
    from collections.abc import Sequence

    from radops.ssh.remote import SSHConnection


class RemoteDocker:
    """`docker ...` on the machine behind `conn`; errors say what was being done on `executor`."""

    def __init__(self, conn: SSHConnection, docker_path: str, executor: str) -> None:
        self.conn = conn
        self.path = docker_path
        self.executor = executor

    def argv(self, *args: str) -> list[str]:
        return [self.path, *args]

    def __call__(self, *args: str, stdin: bytes | None = None, what: str) -> bytes:
        """Run `docker ARGS`; return its stdout or raise the classified error."""
        return self.run_script(self.argv(*args), what, stdin)

    def run_script(self, argv: Sequence[str], what: str, stdin: bytes | None = None) -> bytes:
        """Run an argv made elsewhere (a script); its stdout, or the classified error."""
        status, out, err = self.conn.run(argv, stdin=stdin)
        if status != 0:
            raise self.error(status, err, what)
        return out

    def run_argv(self, argv: Sequence[str], stdin: bytes | None = None) -> tuple[int, bytes]:
        """Run a docker argv made elsewhere; return (exit status, stderr)."""
        status, _, err = self.conn.run(argv, stdin=stdin)
        return status, err

    def error(self, status: int, stderr: bytes, what: str) -> RadopsError:
        """What a failed docker command (or the shell that ran it) means, as a radops error."""
        text = stderr.decode(errors="replace").strip()
        line = error_line(text) or f"exit status {status}"
        host = self.conn.target.display
        if NO_BASE64 in text:
            return RadopsError(f"{host}: {NO_BASE64.removeprefix('radops: ')}")
        if status in (126, 127) and "Error response from daemon" not in text:
            # The remote shell could not run docker (docker itself also exits 126/127 when the
            # job's command cannot be run, but then the daemon says so): the shell says why.
            return self.exec_failure(status, text)
        if "permission denied" in text.lower() and "docker" in text.lower() and ".sock" in text:
            return RadopsError(
                f"permission denied on the Docker socket on {host} for {self.conn.target.username}",
                "Add the user to the `docker` group on the machine, then log in again "
                f"(`radops executors check {self.executor}` renews radops' shared connection).",
            )
        if NO_GPU_DRIVER in text:
            return no_gpu_runtime(host)
        if "Cannot connect to the Docker daemon" in text:
            return self.engine_down()
        if "No such container" in text or "No such object" in text:
            return NotFoundError(f"{what}: {line}")
        return RadopsError(f"{what} on {self.executor}: {line}")

    def exec_failure(self, status: int, text: str) -> RadopsError:
        """The remote shell could not start docker: not there, not runnable, or (execve's
        E2BIG) an argument over Linux's 128 KiB, or all of them over its total."""
        host = self.conn.target.display
        if "argument list too long" in text.lower():
            return UsageError(
                f"the command is too long to run on {host}: Linux refuses an argument over "
                "128 KiB, or arguments and environment over its total (about 2 MB there)",
                "Pass long data in a file: put it in the build folder, or `executors cp` it.",
            )
        if status == 127 and (not text or "not found" in text or "No such file" in text):
            return RadopsError(
                f"docker not found at {self.path} on {host}",
                "Give the right path (`which docker` on the machine): `add ... --docker-path "
                f"PATH`, or for a saved executor `radops executors set {self.executor} "
                "--docker-path PATH`.",
            )
        line = error_line(text) or f"exit status {status}"
        return RadopsError(f"cannot run {self.path} on {host}: {line}")

    def copy_error(self, job_id: str, status: int, stderr: bytes, path: str) -> RadopsError:
        """What a failed `docker cp` to or from job `job_id` means."""
        text = stderr.decode(errors="replace")
        lowered = text.lower()
        if any(s in lowered for s in ("could not find the file", "no such file", "container:path")):
            return NotFoundError(f"no {path!r} in job {job_id} on {self.executor!r}")
        if "No such container" in text:
            return job_not_found(job_id, self.executor)
        return self.error(status, stderr, f"copying {path!r} of job {job_id}")

    def engine_down(self) -> EngineUnreachableError:
        return EngineUnreachableError(
            f"the Docker engine on {self.conn.target.display} is not running",
            "Start it there (`sudo systemctl start docker`).",
        )
