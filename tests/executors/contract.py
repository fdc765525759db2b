"""The contract every Executor keeps, tested through the Python API only.

Subclass `ExecutorContract` once per executor kind, name its class (`kind_class`), and
provide two fixtures:
`executor` (an open Executor, closed afterwards) and `remove_job` (a callable that deletes a job's
container, for cleanup: the Executor API itself never deletes jobs). The build contexts are local
folders (`argv_context`, `tools_context` from tests/conftest.py), which every executor builds here.

A test of a feature not every kind offers is marked `@needs(Feature.X)`: it runs only for the
kinds whose class offers X (tests/conftest.py deselects it for the others), and every kind's
refusal of what it lacks is checked by `test_what_the_kind_lacks_is_refused_up_front`.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest

from radops.errors import BuildError, NotFoundError, UsageError
from radops.executors.base import Executor
from radops.executors.features import Feature
from radops.executors.model import RADOPS_IMAGE, EngineReport, Job, JobRequest, PrunePlan, Stream
from radops.executors.run_options import parse_run_options

JOB_ID_RE = re.compile(r"^[0-9a-f]{12}$")
TIMESTAMP_RE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) ")
WEIRD_ARGS = ["a", "b c", "d", "$(id)", ";echo", "x", "", "*", "'q'", "--flag"]
# Rich markup, a tab, UTF-8, and no newline at the end; plus a line on stderr.
MARKUP_SCRIPT = "printf '[bold]x[/bold]\\t\\033[0m caf\\303\\251\\nend'; printf 'to-err\\n' >&2"
MARKUP_STDOUT = b"[bold]x[/bold]\t\x1b[0m caf\xc3\xa9\nend"
# Bytes that are not UTF-8 (octal escapes, as busybox printf reads them).
RAW_SCRIPT = "printf 'a\\377\\376b\\200\\n'"
RAW_STDOUT = b"a\xff\xfeb\x80\n"


def collect(chunks: Iterator[tuple[Stream, bytes]]) -> dict[str, bytes]:
    out: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    for stream, data in chunks:
        assert isinstance(data, bytes)
        out[stream] += data
    return out


needs = pytest.mark.needs  # @needs(Feature.CP): only for kinds that offer cp


class ExecutorContract:
    """Run, inspect, read and stop jobs: what the CLI relies on from every executor."""

    kind_class: ClassVar[type[Executor]]
    # GPUs nvidia-smi reports on the executor's machine: none here; the rig's SSH host is the
    # stand-in four-GPU box (tests/gpu_standin/).
    machine_gpus: ClassVar[int] = 0

    @pytest.fixture
    def executor(self) -> Iterator[Executor]:
        raise NotImplementedError("subclasses provide an open Executor")

    @pytest.fixture
    def remove_job(self) -> Callable[[str], None]:
        raise NotImplementedError("subclasses provide a way to delete a job's container")

    @pytest.fixture
    def machine_folder(self, tmp_path: Path) -> Path:
        """A folder on the executor's machine, readable here too. The rigs' engines all run on
        this machine, so a local folder is one; an executor kind elsewhere overrides this."""
        folder = tmp_path / "on-the-machine"
        folder.mkdir()
        folder.chmod(0o777)  # jobs may run as another user
        return folder

    @pytest.fixture
    def started(
        self, executor: Executor, remove_job: Callable[[str], None]
    ) -> Iterator[Callable[..., Job]]:
        """Start a job through the executor; every job started is removed afterwards."""
        ids: list[str] = []

        def start(context: Path, command: list[str], **fields: Any) -> Job:
            job = executor.run(JobRequest(context=context, command=command, **fields), print)
            ids.append(job.id)
            return job

        yield start
        for job_id in ids:
            remove_job(job_id)

    # run -------------------------------------------------------------------------------------

    def test_run_returns_the_started_job(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", "exit 0"])
        assert JOB_ID_RE.match(job.id)
        assert job.executor == executor.name
        assert re.search(RADOPS_IMAGE, job.image)  # radops/NAME:TAG, or REGISTRY/radops/...
        assert job.command == ["sh", "-c", "exit 0"]
        # A scheduler's job may still be queued when run() returns (Slurm: PENDING).
        assert job.status in ("created", "pending", "running", "exited")
        assert job.created_at is not None

    def test_run_reports_progress_lines(
        self, executor: Executor, remove_job: Callable[[str], None], tools_context: Path
    ) -> None:
        lines: list[str] = []
        job = executor.run(JobRequest(context=tools_context, command=["true"]), lines.append)
        remove_job(job.id)
        assert lines, "run() reported no progress at all"
        assert all(isinstance(line, str) and "\n" not in line for line in lines)

    def test_each_run_is_a_new_job(self, started: Callable[..., Job], tools_context: Path) -> None:
        first = started(tools_context, ["true"])
        second = started(tools_context, ["true"])
        assert first.id != second.id
        assert first.image == second.image  # unchanged context: same content-addressed image

    def test_arguments_reach_the_container_verbatim(
        self, executor: Executor, started: Callable[..., Job], argv_context: Path
    ) -> None:
        job = started(argv_context, WEIRD_ARGS)
        assert executor.wait(job.id) == 0
        output = collect(executor.logs(job.id))
        assert output["stdout"].decode().split("\n")[:-1] == WEIRD_ARGS
        assert executor.get(job.id).command == WEIRD_ARGS

    def test_environment_reaches_the_container(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        env = {"GREETING": "hello world", "QUOTED": 'it\'s "x" $HOME'}
        job = started(tools_context, ["sh", "-c", 'echo "$GREETING|$QUOTED"'], env=env)
        executor.wait(job.id)
        assert collect(executor.logs(job.id))["stdout"] == b'hello world|it\'s "x" $HOME\n'

    def test_name_is_kept_as_a_label(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["true"], name="my experiment")
        assert job.name == "my experiment"
        assert executor.get(job.id).name == "my experiment"

    def test_a_100k_character_argument_reaches_the_container_verbatim(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        # Longer than a remote command line may be: over SSH the argv travels on stdin.
        long = "".join(WEIRD_ARGS) * 4000 + "é"
        assert len(long) > 100_000
        script = 'printf %s "$1" | md5sum | cut -c1-32; printf %s "$1" | wc -c; echo "$WITH"'
        job = started(tools_context, ["sh", "-c", script, "-", long], env={"WITH": "env too"})
        assert executor.wait(job.id) == 0
        digest = hashlib.md5(long.encode()).hexdigest()
        expected = f"{digest}\n{len(long.encode())}\nenv too\n"
        assert collect(executor.logs(job.id))["stdout"].decode() == expected

    # run options (-v, --shm-size, ...) -------------------------------------------------------

    def test_shm_size_gives_a_job_more_than_dockers_64_mb(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        # What a PyTorch DataLoader with workers does: put ~100 MB through /dev/shm.
        fill = ["sh", "-c", "dd if=/dev/zero of=/dev/shm/batch bs=1048576 count=100 2>&1"]
        small = started(tools_context, fill)
        assert executor.wait(small.id) != 0
        assert b"No space left on device" in collect(executor.logs(small.id))["stdout"]
        big = started(tools_context, fill, options=parse_run_options(shm_size="256m"))
        assert executor.wait(big.id) == 0

    def test_volumes_read_only_and_read_write(
        self,
        executor: Executor,
        started: Callable[..., Job],
        tools_context: Path,
        machine_folder: Path,
    ) -> None:
        (machine_folder / "data").mkdir()
        (machine_folder / "data" / "train.csv").write_text("x,y\n1,2\n")
        (machine_folder / "out").mkdir()
        options = parse_run_options(
            volumes=[f"{machine_folder}/data:/data:ro", f"{machine_folder}/out:/out"]
        )
        script = "cat /data/train.csv; echo ckpt > /out/model.pt; touch /data/x 2>&1; true"
        job = started(tools_context, ["sh", "-c", script], options=options)
        assert executor.wait(job.id) == 0
        output = collect(executor.logs(job.id))["stdout"].decode()
        assert output.startswith("x,y\n1,2\n") and "Read-only file system" in output
        assert (machine_folder / "out" / "model.pt").read_text() == "ckpt\n"
        assert not (machine_folder / "data" / "x").exists()

    def test_container_options_apply_and_are_recorded_on_the_job(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        options = parse_run_options(
            workdir="/tmp", user="65534:65534", entrypoint="sh", memory="64m", cpus="0.5",
            ipc="private", network="none", labels=["team=vision"], mounts=[
                "type=tmpfs,target=/scratch,tmpfs-size=1048576"
            ],
        )  # fmt: skip
        job = started(tools_context, ["-c", "pwd; id -u; id -g; df -k /scratch | tail -1"],
                      options=options)  # fmt: skip
        assert executor.wait(job.id) == 0
        lines = collect(executor.logs(job.id))["stdout"].decode().splitlines()
        assert lines[:3] == ["/tmp", "65534", "65534"]
        assert lines[3].split()[1] == "1024"  # the tmpfs mount, 1 MiB
        recorded = executor.get(job.id).options
        assert recorded == options.to_json() and recorded["labels"] == {"team": "vision"}
        listed = next(j for j in executor.jobs() if j.id == job.id)
        assert listed.options == recorded

    def test_a_unique_name_finds_the_job_like_its_id(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        name = f"named-{secrets.token_hex(4)}"
        job = started(tools_context, ["sh", "-c", "echo by-name"], name=name)
        assert executor.wait(name) == 0
        assert executor.get(name).id == job.id
        assert collect(executor.logs(name))["stdout"] == b"by-name\n"
        twin = f"twin-{secrets.token_hex(4)}"
        started(tools_context, ["true"], name=twin)
        started(tools_context, ["true"], name=twin)
        with pytest.raises(UsageError, match=f"2 jobs on .* are named '{twin}'"):
            executor.get(twin)
        assert executor.get(job.id[:8]).name == name  # an id prefix still works

    def test_run_refuses_a_name_a_job_id_starts_with(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sleep", "300"])
        # A later `rm PREFIX` would remove the new job: until now, PREFIX meant this one.
        with pytest.raises(UsageError, match=f"is the start of the id of job {job.id} on"):
            started(tools_context, ["true"], name=job.id[:5])
        assert not [other for other in executor.jobs() if other.name == job.id[:5]]
        assert executor.get(job.id[:5]).id == job.id

    def test_missing_context_is_a_usage_error(self, executor: Executor, tmp_path: Path) -> None:
        with pytest.raises(UsageError):
            executor.run(JobRequest(context=tmp_path / "absent", command=[]), lambda _: None)

    def test_failing_build_is_a_build_error(self, executor: Executor, tmp_path: Path) -> None:
        context = tmp_path / "broken"
        context.mkdir()
        (context / "Dockerfile").write_text("FROM busybox:1.36\nRUN false\n")
        with pytest.raises(BuildError):
            executor.run(JobRequest(context=context, command=[]), lambda _: None)

    # get / jobs / wait -----------------------------------------------------------------------

    def test_wait_returns_the_exit_code_and_get_reports_it(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", "exit 3"])
        assert executor.wait(job.id) == 3
        done = executor.get(job.id)
        assert (done.status, done.exit_code) == ("exited", 3)

    def test_get_accepts_a_unique_prefix(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["true"])
        assert executor.get(job.id[:8]).id == job.id

    @pytest.mark.parametrize("job_id", ["no-such-job", "0123456789ab"])  # a prefix; a full id
    def test_unknown_job_is_not_found(self, executor: Executor, job_id: str) -> None:
        with pytest.raises(NotFoundError):
            executor.get(job_id)
        with pytest.raises(NotFoundError):
            collect(executor.logs(job_id))
        with pytest.raises(NotFoundError):
            executor.wait(job_id)
        with pytest.raises(NotFoundError):
            executor.stop(job_id)

    def test_jobs_lists_started_jobs_newest_first(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        first = started(tools_context, ["sh", "-c", "exit 5"])
        executor.wait(first.id)
        second = started(tools_context, ["true"])
        found = {job.id: job for job in executor.jobs()}
        assert {first.id, second.id} <= set(found)
        assert (found[first.id].status, found[first.id].exit_code) == ("exited", 5)
        assert found[first.id].command == ["sh", "-c", "exit 5"]
        assert found[first.id].image == first.image
        stamps = [j.created_at.timestamp() for j in executor.jobs() if j.created_at]
        assert stamps == sorted(stamps, reverse=True)

    # logs ------------------------------------------------------------------------------------

    def test_logs_are_byte_for_byte_and_keep_streams_apart(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", MARKUP_SCRIPT])
        executor.wait(job.id)
        output = collect(executor.logs(job.id))
        assert output == {"stdout": MARKUP_STDOUT, "stderr": b"to-err\n"}

    def test_logs_keep_bytes_that_are_not_utf8(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", RAW_SCRIPT])
        executor.wait(job.id)
        assert collect(executor.logs(job.id))["stdout"] == RAW_STDOUT

    def test_logs_tail(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["seq", "1", "5"])
        executor.wait(job.id)
        assert collect(executor.logs(job.id, tail=2))["stdout"] == b"4\n5\n"
        assert collect(executor.logs(job.id, tail=0))["stdout"] == b""

    @needs(Feature.LOG_TIMESTAMPS)
    def test_logs_timestamps(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["seq", "1", "3"])
        executor.wait(job.id)
        lines = collect(executor.logs(job.id, timestamps=True))["stdout"].splitlines()
        assert len(lines) == 3
        for number, line in zip((b"1", b"2", b"3"), lines, strict=True):
            assert TIMESTAMP_RE.match(line), line
            assert line.endswith(b" " + number)

    def test_follow_streams_until_the_job_ends(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", "echo start; sleep 2; echo end"])
        began = time.monotonic()
        output = collect(executor.logs(job.id, follow=True))
        assert output["stdout"] == b"start\nend\n"
        assert time.monotonic() - began >= 1  # it waited for the job rather than returning early
        assert executor.get(job.id).status == "exited"

    def test_large_logs_arrive_intact(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["seq", "1", "100000"])
        executor.wait(job.id)
        expected = "".join(f"{i}\n" for i in range(1, 100001)).encode()
        assert collect(executor.logs(job.id))["stdout"] == expected

    # stop ------------------------------------------------------------------------------------

    def test_stop_ends_a_running_job(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sleep", "300"])
        assert executor.get(job.id).status == "running"
        result = executor.stop(job.id, timeout=1)
        stopped = result.job
        assert result.was_running
        assert stopped.id == job.id
        assert stopped.status == "exited"
        assert stopped.exit_code is not None

    def test_stopping_an_exited_job_is_not_an_error(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", "exit 2"])
        executor.wait(job.id)
        result = executor.stop(job.id, timeout=1)
        again = result.job
        assert not result.was_running
        assert (again.status, again.exit_code) == ("exited", 2)

    # cp --------------------------------------------------------------------------------------

    @staticmethod
    def _tree(executor: Executor, job_id: str, path: str) -> dict[str, bytes | None]:
        """What copy_from streams: each entry's name, and a file's content (None: a folder)."""
        data = b"".join(executor.copy_from(job_id, path))
        found: dict[str, bytes | None] = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                f = tar.extractfile(member) if member.isfile() else None
                found[member.name.rstrip("/")] = f.read() if f else None
        return found

    @needs(Feature.CP)
    def test_copy_from_an_ended_job_streams_its_files_as_tar(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        script = "mkdir -p /out/sub && printf ckpt > /out/model.pt && printf 2 > /out/sub/step"
        job = started(tools_context, ["sh", "-c", script])
        assert executor.wait(job.id) == 0
        assert self._tree(executor, job.id, "/out") == {
            "out": None, "out/model.pt": b"ckpt", "out/sub": None, "out/sub/step": b"2",
        }  # fmt: skip
        with pytest.raises(NotFoundError):
            b"".join(executor.copy_from(job.id, "/nowhere"))

    @needs(Feature.CP)
    def test_copy_to_follows_docker_cp_rules(
        self,
        executor: Executor,
        started: Callable[..., Job],
        tools_context: Path,
        tmp_path: Path,
    ) -> None:
        job = started(tools_context, ["sh", "-c", "mkdir /in"])
        executor.wait(job.id)
        folder = tmp_path / "config"
        (folder / "sub").mkdir(parents=True)
        (folder / "a.yaml").write_text("lr: 3e-4\n")
        (folder / "sub" / "b.txt").write_text("b\n")
        executor.copy_to(job.id, folder, "/in")  # /in exists: the folder goes into it
        executor.copy_to(job.id, folder, "/fresh")  # /fresh does not: the folder becomes it
        executor.copy_to(job.id, folder / "a.yaml", "/in/renamed.yaml")
        tree = self._tree(executor, job.id, "/in")
        assert tree["in/config/a.yaml"] == b"lr: 3e-4\n" and tree["in/config/sub/b.txt"] == b"b\n"
        assert tree["in/renamed.yaml"] == b"lr: 3e-4\n"
        assert self._tree(executor, job.id, "/fresh")["fresh/a.yaml"] == b"lr: 3e-4\n"
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo("streamed.txt")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
        executor.copy_archive_to(job.id, [archive.getvalue()], "/in")
        assert self._tree(executor, job.id, "/in/streamed.txt") == {"streamed.txt": b"abc"}

    @needs(Feature.CP)
    def test_a_missing_folder_in_the_job_is_one_message_on_every_kind(
        self,
        executor: Executor,
        started: Callable[..., Job],
        tools_context: Path,
        tmp_path: Path,
    ) -> None:
        job = started(tools_context, ["sh", "-c", "mkdir /in && touch /in/file"])
        executor.wait(job.id)
        file = tmp_path / "f.txt"
        file.write_text("f\n")
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(file, arcname="f.txt")
        where = f"in job {job.id} on {executor.name!r}"
        cases: list[tuple[Callable[[], object], str]] = [
            (lambda: executor.copy_to(job.id, file, "/nope/dir/f.txt"),
             f"no folder '/nope/dir' {where}"),
            (lambda: executor.copy_to(job.id, file, "/nope/"), f"no folder '/nope' {where}"),
            (lambda: executor.copy_archive_to(job.id, [archive.getvalue()], "/in/nonexist"),
             f"no folder '/in/nonexist' {where}"),
            (lambda: executor.copy_archive_to(job.id, [archive.getvalue()], "/in/file"),
             f"no folder '/in/file' {where}"),
        ]  # fmt: skip
        for copy, message in cases:
            with pytest.raises(NotFoundError) as caught:  # exit 3 on every kind
                copy()
            assert caught.value.message == message
            assert caught.value.exit_code == 3

    @needs(Feature.CP)
    def test_copy_reaches_files_on_a_mounted_volume(
        self,
        executor: Executor,
        started: Callable[..., Job],
        tools_context: Path,
        machine_folder: Path,
    ) -> None:
        options = parse_run_options(volumes=[f"{machine_folder}:/data"])
        job = started(tools_context, ["sh", "-c", "echo logged > /data/run.log"], options=options)
        assert executor.wait(job.id) == 0
        assert self._tree(executor, job.id, "/data/run.log") == {"run.log": b"logged\n"}

    # forward ---------------------------------------------------------------------------------

    @needs(Feature.FORWARD)
    def test_a_port_nothing_listens_on_in_the_job_is_connection_refused(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        # As a socket says it on every kind (not "lost the SSH connection": it is fine), so
        # `forward` can say that nothing listens there.
        job = started(tools_context, ["sleep", "300"])
        opener = executor.port_opener(job.id, 9)
        with pytest.raises(ConnectionRefusedError):
            opener()

    # top -------------------------------------------------------------------------------------

    @needs(Feature.TOP)
    def test_top_reports_running_jobs_and_the_machines_gpus(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        busy = started(tools_context, ["sh", "-c", "while :; do :; done"])
        ended = started(tools_context, ["true"])
        executor.wait(ended.id)
        report = executor.top()
        rows = {row.job_id: row for row in report.jobs}
        assert busy.id in rows and ended.id not in rows
        assert rows[busy.id].pids == 1 and rows[busy.id].memory_limit
        assert rows[busy.id].cpu_percent is not None
        if not self.machine_gpus:  # no NVIDIA driver there (see docs/training.md)
            assert shutil.which("nvidia-smi") is None and report.gpus is None
            assert report.to_json()["gpus"] is None
        else:
            assert [g.index for g in report.gpus or []] == list(range(self.machine_gpus))

    # rm / prune ------------------------------------------------------------------------------

    def test_remove_takes_an_ended_job_away(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sh", "-c", "exit 3"])
        executor.wait(job.id)
        removed = executor.remove(job.id[:8])  # a prefix, like every job command
        assert (removed.id, removed.status, removed.exit_code) == (job.id, "exited", 3)
        with pytest.raises(NotFoundError):
            executor.get(job.id)
        with pytest.raises(NotFoundError):
            executor.remove(job.id)

    def test_remove_refuses_a_running_job_unless_forced(
        self, executor: Executor, started: Callable[..., Job], tools_context: Path
    ) -> None:
        job = started(tools_context, ["sleep", "300"])
        with pytest.raises(UsageError, match="is running"):
            executor.remove(job.id)
        assert executor.get(job.id).status == "running"
        assert executor.remove(job.id, force=True).status == "running"
        with pytest.raises(NotFoundError):
            executor.get(job.id)

    @staticmethod
    def _ended_and_running(
        executor: Executor, started: Callable[..., Job], tmp_path: Path
    ) -> tuple[Job, Job, PrunePlan]:
        """One ended and one running job of a new image of their own, and the prune plan
        (with images) then: it has the ended job and not the running one."""
        context = tmp_path / f"prune-{secrets.token_hex(4)}"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM busybox:1.36\nLABEL nonce={context.name}\n")
        ended = started(context, ["true"])
        running = started(context, ["sleep", "300"])
        executor.wait(ended.id)
        plan = executor.prune_plan(images=True)
        planned = {job.id for job in plan.jobs}
        assert ended.id in planned and running.id not in planned
        return ended, running, plan

    def test_prune_removes_ended_jobs_never_running_ones(
        self, executor: Executor, started: Callable[..., Job], tmp_path: Path
    ) -> None:
        ended, running, _ = self._ended_and_running(executor, started, tmp_path)
        old_only = executor.prune_plan(datetime.now(timezone.utc) - timedelta(hours=1))
        assert ended.id not in {job.id for job in old_only.jobs}  # --until: too young
        executor.stop(running.id, timeout=0)
        # Prune only what this test made: the engine may hold other people's ended jobs.
        plan = executor.prune_plan()
        mine = PrunePlan([j for j in plan.jobs if j.id in (ended.id, running.id)], [])
        result = executor.prune(mine)
        assert sorted(result.jobs) == sorted([ended.id, running.id])
        assert not [j for j in executor.jobs() if j.id in (ended.id, running.id)]
        again = executor.prune(mine)  # gone already: nothing removed, no error
        assert (again.jobs, again.images) == ([], [])

    @needs(Feature.IMAGES)
    def test_prune_plans_the_images_only_ended_jobs_use(
        self, executor: Executor, started: Callable[..., Job], tmp_path: Path
    ) -> None:
        # An image of its own (a new folder content), used by one ended and one running job.
        ended, running, plan = self._ended_and_running(executor, started, tmp_path)
        assert not [i for i in plan.images if ended.image in i.refs]  # the running job uses it
        executor.stop(running.id, timeout=0)
        plan = executor.prune_plan(images=True)
        ours = [image for image in plan.images if ended.image in image.refs]
        assert len(ours) == 1 and ours[0].size > 0
        mine = PrunePlan([j for j in plan.jobs if j.id in (ended.id, running.id)], ours)
        result = executor.prune(mine)
        assert sorted(result.jobs) == sorted([ended.id, running.id])
        assert result.images == ours
        # --json names what went by its tags, not only its id
        assert ended.image in result.to_json()["images"][0]["refs"]
        assert result.space_freed is not None and result.space_freed >= 0
        again = executor.prune(mine)
        assert (again.jobs, again.images) == ([], [])

    # what the kind does not offer ---------------------------------------------------------------

    def test_what_the_kind_lacks_is_refused_up_front(self, executor: Executor) -> None:
        """Each feature the kind lacks is refused by name, in one line, by its class (so
        before any connection) and by the method that would use it."""
        calls: dict[Feature, Callable[[], object]] = {
            Feature.CP: lambda: b"".join(executor.copy_from("0123456789ab", "/out")),
            Feature.EXEC: lambda: executor.exec("0123456789ab", ["true"]),
            Feature.FORWARD: lambda: executor.port_opener("0123456789ab", 80),
            Feature.TOP: lambda: executor.top(),
            Feature.CONNECT: lambda: executor.shell().__enter__(),
            Feature.LOG_TIMESTAMPS: lambda: collect(executor.logs("0123456789ab", timestamps=True)),
        }
        lacking = [f for f in Feature if f not in self.kind_class.features]
        for feature in lacking:
            with pytest.raises(UsageError) as refused:
                self.kind_class.require(feature, executor.name)
            assert "\n" not in refused.value.message
            if feature in calls:
                with pytest.raises(UsageError, match=re.escape(refused.value.message)):
                    calls[feature]()

    # check -----------------------------------------------------------------------------------

    def test_check_reports_the_engine(self, executor: Executor) -> None:
        report = executor.check()
        assert isinstance(report, EngineReport)
        assert report.executor == executor.name
        assert report.server_version and report.server_version != "?"
        assert report.architecture and report.os

    def test_missing_dockerfile_is_a_usage_error(self, executor: Executor, tmp_path: Path) -> None:
        (tmp_path / "Dockerfile").write_text("FROM busybox:1.36\n")
        with pytest.raises(UsageError):
            executor.run(
                JobRequest(context=tmp_path, command=[], dockerfile="Missing.Dockerfile"),
                lambda _: None,
            )
