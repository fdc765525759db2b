"""What the Slurm executor writes and reads, as text: no cluster needed.

The batch scripts are checked by the real `sh -n` for syntax, and run by the real `sh` with a
stand-in runtime. pyxis and enroot are not packaged for Debian or PyPI, so the pyxis script is
never run against a real pyxis: here it runs with a stand-in `srun`
(tests/slurm/test_slurm_safety.py).
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from radops.executors.header import Header, HeaderReader
from radops.executors.model import Stream
from radops.executors.slurm import batch as batch_sh
from radops.executors.slurm import folders, scripts
from radops.executors.slurm.executor import _slurm_memory
from radops.executors.slurm.login import partitions, slurm_line
from tests.rig import free_port

WEIRD = ["a", "b c", "$(id)", ";echo", "", "'q'", "--flag", 'x"y']


def batch(runtime: str = "docker", **fields: object) -> batch_sh.BatchJob:
    values: dict[str, object] = {
        "job_id": "0123456789ab", "folder": "/shared/jobs dir/0123456789ab", "runtime": runtime,
        "runtime_path": "/usr/bin/" + runtime, "image": "127.0.0.1:5000/radops/x:abc",
        "run_args": ["--label", "dev.radops.job-id=0123456789ab", "-v", "/data:/data:ro"],
        "command": WEIRD, "has_env": True,
    }  # fmt: skip
    values.update(fields)
    return batch_sh.BatchJob(**values)  # type: ignore[arg-type]


def sh_syntax_ok(script: str) -> None:
    result = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_docker_script_runs_the_container_in_the_background_and_stops_it_on_term() -> None:
    script = batch_sh.batch_script(batch())
    sh_syntax_ok(script)
    assert '"$rt" run --init --name "$name" "$@" ' in script
    assert '"$rt" inspect --format "{{.State.Status}} {{.State.ExitCode}}"' in script
    assert '"$rt" rm --force "$name"' in script
    pull = next(x for x in script.splitlines() if '"$rt" pull' in x)
    assert " & reap $! || " in pull and "  reap $!; s=$?" in script
    assert "trap 'stopping=1; [ -n \"$stopper\" ] || { stopper & stopper=$!; }' TERM" in script
    assert '"$rt" stop --time "$(grace)" "$name"' in script
    # Only the GPUs Slurm allotted, and only where the NVIDIA runtime can take them.
    assert '--gpus "\\"device=$SLURM_JOB_GPUS\\""' in script and "/dev/nvidiactl" in script
    assert 'set -- --env-file "$dir/env" "$@"' in script
    assert "dir='/shared/jobs dir/0123456789ab'" in script
    # Every argument of the job quoted once: the shell gives the container exactly these.
    line = next(x for x in script.splitlines() if '"$rt" run --init' in x)
    tail = line.split('"$@" ', 1)[1].removesuffix(" &")
    assert shlex.split(tail) == ["127.0.0.1:5000/radops/x:abc", *WEIRD]
    assert 'printf "%s %s %s\\n" "$s"' in script and 'mv -f "$dir/record.tmp"' in script


def test_the_docker_script_really_passes_arguments_verbatim(tmp_path: Path) -> None:
    """Run the generated script with a stand-in `docker` that prints its argv: what the
    container would get, through the real sh."""
    fake = tmp_path / "rt"
    fake.write_text(
        '#!/bin/sh\n[ "$1" = run ] && printf "<%s>\\n" "$@"\n[ "$1" = wait ] && echo 0\nexit 0\n'
    )
    fake.chmod(0o755)
    folder = tmp_path / "job"
    folder.mkdir()
    script = batch_sh.batch_script(batch(runtime_path=str(fake), folder=str(folder), has_env=False))
    out = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, env={"PATH": "/bin:/usr/bin"}
    )
    assert out.returncode == 0, out.stderr
    argv = [line[1:-1] for line in out.stdout.splitlines()]
    assert argv[argv.index("127.0.0.1:5000/radops/x:abc") + 1 :] == WEIRD
    assert argv[:4] == ["run", "--init", "--name", "radops-0123456789ab"]
    assert (folder / "record").read_text().startswith("0 ")
    assert (folder / "started").exists()


def test_podman_script_passes_allotted_gpus_as_cdi_devices() -> None:
    script = batch_sh.batch_script(batch("podman"))
    sh_syntax_ok(script)
    assert 'set -- --device "nvidia.com/gpu=$g" "$@"' in script
    assert "--gpus" not in script


def test_multi_node_script_starts_one_task_per_node_with_torchrun_variables() -> None:
    script = batch_sh.batch_script(batch(nodes=2, host_network=True))
    sh_syntax_ok(script)
    assert 'srun --ntasks-per-node=1 --kill-on-bad-exit=1 /bin/sh "$dir/job.sh" --task' in script
    for var in ("MASTER_ADDR=", "MASTER_PORT=", "NNODES=", "WORLD_SIZE=", "NODE_RANK=",
                "SLURM_PROCID="):  # fmt: skip
        assert var in script
    assert 'set -- --network host "$@"' in script
    assert "--network host" not in batch_sh.batch_script(batch(nodes=2))


def test_pyxis_script_as_text() -> None:
    script = batch_sh.batch_script(batch("pyxis", runtime_path="srun"))
    sh_syntax_ok(script)
    assert "--container-image=127.0.0.1:5000#radops/x:abc" in script
    assert "--container-mounts=/data:/data:ro" in script
    # The -e values only in srun's own environment (a subshell), srun found before them.
    step = next(x for x in script.splitlines() if '( set -- "$srun" ' in x)
    assert step.startswith("  ( set -- ") and step.endswith('; exec "$@" ) &')
    assert 'while IFS= read -r line; do export "$line"; done <"$dir/env"; exec' in step
    words = shlex.split(step.split("; while ")[0].removeprefix("  ( set -- "))
    assert words[-len(WEIRD) :] == WEIRD
    assert "if srun=$(command -v srun); then" in script
    lines = script.splitlines()
    assert [x for x in lines if "export" in x] == [step]
    # TERM (scancel, the time limit) is trapped so the env file goes and the record is written.
    assert "trap : TERM INT HUP" in lines and "trap 'rm -f \"$dir/env\"' EXIT" in lines
    hub = batch_sh.batch_script(batch("pyxis", image="radops/x:abc", run_args=[]))
    assert "--container-image=radops/x:abc" in hub and "--container-mounts" not in hub


def test_sbatch_args() -> None:
    args = batch_sh.sbatch_args(
        "0123456789ab", "/j/0123456789ab", nodes=2, gres="gpu:a100:2", time="4:00:00", cpus=8,
        memory="16G", partition="gpu", account="lab", extra=("--qos=high",),
    )  # fmt: skip
    assert args[:3] == [
        "--parsable",
        "--job-name=radops-0123456789ab",
        "--output=/j/0123456789ab/stdout",
    ]
    for expected in ("--error=/j/0123456789ab/stderr", "--nodes=2", "--gres=gpu:a100:2",
                     "--time=4:00:00", "--cpus-per-task=8", "--mem=16G", "--partition=gpu",
                     "--account=lab"):  # fmt: skip
        assert expected in args
    assert args[-1] == "--qos=high"
    bare = batch_sh.sbatch_args("0123456789ab", "/j/x", nodes=None, gres=None, time=None,
                               cpus=None, memory=None, partition=None, account=None)  # fmt: skip
    assert not [a for a in bare if a.startswith(("--nodes", "--gres", "--time", "--mem"))]


@pytest.mark.parametrize(
    ("gpus", "gres"), [("2", "gpu:2"), ("a100:2", "gpu:a100:2"), ("h100-80g:8", "gpu:h100-80g:8")]
)
def test_gres_for(gpus: str, gres: str) -> None:
    assert batch_sh.gres_for(gpus) == gres


@pytest.mark.parametrize("gpus", ["0", "two", "a:b:2", "a100:", ":2", "-1", "a b:2"])
def test_gres_for_refuses(gpus: str) -> None:
    with pytest.raises(ValueError):
        batch_sh.gres_for(gpus)


def test_submit_stdin_keeps_values_off_the_command_line() -> None:
    env = b"TOKEN=s3cret value\n"
    stdin = scripts.submit_stdin(env, {"labels": {"a": "b"}}, "#!/bin/sh\necho hi\n")
    first, second, script = stdin.split(b"\n", 2)
    import base64
    import json

    assert base64.b64decode(first) == env and json.loads(base64.b64decode(second)) == {
        "labels": {"a": "b"}
    }
    assert script == b"#!/bin/sh\necho hi\n"
    argv = scripts.submit_argv("/j", "0123456789ab", ["--parsable"])
    assert b"s3cret" not in " ".join(argv).encode()


def test_parse_jobs() -> None:
    out = (
        b"banner from a login shell\n"
        b'radops:job 0123456789ab\n{"labels": {"dev.radops.job-id": "0123456789ab"}}\n'
        b"radops:slurm-id 12\nradops:started 2026-01-01T00:00:00Z node1\n"
        b"radops:record 3 2026-01-01T00:01:00Z node1\n"
        b'radops:job 111111111111\n{"labels": {}}\nradops:slurm-id 13;cluster\n'
        b"radops:squeue 0\n12|COMPLETED|None|node1\n13|PENDING|Resources|\n"
    )
    entries, status, _, rows = folders.parse_jobs(out)
    assert [e.name for e in entries] == ["0123456789ab", "111111111111"]
    assert entries[0].files["record"] == "3 2026-01-01T00:01:00Z node1"
    assert entries[1].files == {"slurm-id": "13;cluster"}
    assert status == 0 and rows["13"] == folders.QueueRow("13", "PENDING", "Resources", "")
    assert folders.parse_record("143 2026-01-01T00:01:00Z node2") == (143, "node2")
    failed = folders.parse_jobs(b"radops:squeue 1\nsqueue: error: Munge encode failed\n")
    assert failed[1] == 1 and "Munge" in failed[2]


def test_logs_reader_separates_notices_from_output() -> None:
    reader = HeaderReader(early_stderr=False)
    got: list[tuple[str, bytes]] = []
    feeds: list[tuple[Stream, bytes]] = [
        ("stdout", b"motd\nradops:wait PENDING Resources\nradops:wa"),
        ("stderr", b"a login shell's noise\n"),
        ("stdout", b"it RUNNING None\nradops:ok\nradops:wait not a notice\x00\xff"),
        ("stderr", b"job stderr\n"),
    ]
    for stream, data in feeds:
        got += reader.feed(stream, data)
    assert reader.notices == ["PENDING Resources", "RUNNING None"]
    assert got == [("stdout", b"radops:wait not a notice\x00\xff"), ("stderr", b"job stderr\n")]


def test_find_header() -> None:
    assert Header.find(b"x\nradops:ok\n12\n") == Header(True, 0, b"12\n")
    assert Header.find(b"radops:error 1\nsbatch: error: no\n") == Header(
        False, 1, b"sbatch: error: no\n"
    )
    assert Header.find(b"noise radops:ok\n") is None


@pytest.mark.parametrize(
    ("docker", "slurm"), [("16g", "16G"), ("64m", "64M"), ("1536m", "1536M"), ("1000", "1K"),
                          ("2048k", "2M"), ("1.5g", "1536M")],
)  # fmt: skip
def test_memory_in_slurm_units(docker: str, slurm: str) -> None:
    assert _slurm_memory(docker) == slurm


def test_slurm_error_lines_and_partitions() -> None:
    text = "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    assert slurm_line(text) == "Invalid partition name specified"
    rows = "gpu|up|2|gpu:fake:2|8\ncpu|up|1|gpu:fake:2|8\ngpu|up|1|(null)|4\n"
    assert partitions(rows) == [
        {"name": "gpu", "state": "up", "nodes": "3", "gres": "gpu:fake:2", "cpus": "8"},
        {"name": "cpu", "state": "up", "nodes": "1", "gres": "gpu:fake:2", "cpus": "8"},
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--slurm-arg", "--output=/tmp/x"), "radops sets --output itself"),
        (("--slurm-arg", "qos=high"), "invalid --slurm-arg 'qos=high'"),
        (("--nodes", "0"), "--nodes"),
    ],
)
def test_bad_slurm_flags_are_one_line_errors(
    invoke: Callable[..., object], tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """Refused before any connection: the cluster's login node here does not even exist."""
    base = ("executors", "add", "--kind", "slurm", "--name", "hpc", "--hostname", "127.0.0.1")
    added = invoke(*base, "--port", str(free_port()), "--username", "u", "--job-dir", "/j",
                   "--no-check")  # fmt: skip
    assert added.returncode == 0, added.stderr  # type: ignore[attr-defined]
    result = invoke("executors", "run", "hpc", str(tmp_path), *args, "--", "true")
    assert result.returncode == 2  # type: ignore[attr-defined]
    assert message in result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.stderr  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--kind", "ssh", "--partition", "gpu"), "--partition: not a setting of ssh executors"),
        (("--kind", "slurm", "--job-dir", "jobs"), "invalid job folder 'jobs'"),
        (("--kind", "slurm", "--job-dir", "/j", "--runtime", "lxc"), "invalid --runtime 'lxc'"),
        (("--kind", "k8s"), "invalid --kind 'k8s'"),
    ],
)
def test_bad_add_flags_are_one_line_errors(
    invoke: Callable[..., object], args: tuple[str, ...], message: str
) -> None:
    base = ("executors", "add", "--name", "c", "--hostname", "h", "--username", "u", "--no-check")
    result = invoke(*base, *args)
    assert result.returncode == 2, result.stderr  # type: ignore[attr-defined]
    assert message in result.stderr  # type: ignore[attr-defined]


def test_a_slurm_executor_is_saved_and_its_defaults_changed(
    invoke: Callable[..., object],
) -> None:
    added = invoke("executors", "add", "--kind", "slurm", "--name", "hpc", "--hostname", "login",
                   "--username", "ana", "--job-dir", "/shared/radops/", "--partition", "gpu",
                   "--no-check", "--json")  # fmt: skip
    assert added.returncode == 0, added.stderr  # type: ignore[attr-defined]
    import json

    spec = json.loads(added.stdout)  # type: ignore[attr-defined]
    assert (spec["kind"], spec["job_dir"], spec["runtime"]) == ("slurm", "/shared/radops", "docker")
    changed = invoke("executors", "set", "hpc", "--partition", "", "--account", "lab", "--json")
    spec = json.loads(changed.stdout)  # type: ignore[attr-defined]
    assert "partition" not in spec and spec["account"] == "lab"
    refused = invoke("executors", "set", "local", "--partition", "gpu")
    assert refused.returncode != 0  # type: ignore[attr-defined]
    listed = invoke("executors", "list")
    assert "slurm: ana@login" in listed.stdout  # type: ignore[attr-defined]
