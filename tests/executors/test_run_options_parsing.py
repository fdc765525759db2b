"""`docker run` options of `run`: what is accepted, and the one-line errors for what is not.
Pure logic; the end-to-end behaviour on real engines is in test_run_options.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from radops.errors import UsageError
from radops.executors.run_options import (
    RunOptions,
    check_mount,
    parse_run_options,
    read_env_file,
    size_bytes,
)


def test_good_values_pass_through_as_docker_flags() -> None:
    options = parse_run_options(
        volumes=["/data/imagenet:/data:ro", "cache:/cache"],
        mounts=["type=bind,source=/scratch,target=/scratch,readonly"],
        shm_size="8g",
        ipc="host",
        publish=["6006:6006", "127.0.0.1:8888:8888/tcp", "9000"],
        workdir="/app",
        user="1000:1000",
        entrypoint="python",
        memory="16g",
        cpus="3.5",
        network="host",
        labels=["team=vision"],
    )
    assert options.docker_argv() == [
        "--volume", "/data/imagenet:/data:ro", "--volume", "cache:/cache",
        "--mount", "type=bind,source=/scratch,target=/scratch,readonly",
        "--shm-size", "8g", "--ipc", "host", "--workdir", "/app", "--user", "1000:1000",
        "--entrypoint", "python", "--memory", "16g", "--cpus", "3.5", "--network", "host",
        "--publish", "6006:6006", "--publish", "127.0.0.1:8888:8888/tcp", "--publish", "9000",
        "--label", "team=vision",
    ]  # fmt: skip
    assert RunOptions.from_json(options.to_json()) == options
    assert RunOptions().to_json() == {} and RunOptions().docker_argv() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"volumes": ["./data:/data"]}, "'./data' is a relative path"),
        ({"volumes": ["data/x:/data"]}, "'data/x' is a relative path"),
        ({"volumes": ["~/data:/data"]}, "'~/data' is a relative path"),
        ({"volumes": ["/data"]}, "use HOST_PATH:CONTAINER_PATH"),
        ({"volumes": ["/data:data"]}, "container path must be absolute"),
        ({"volumes": ["/data:/data:rx"]}, "unknown mode 'rx'"),
        ({"mounts": ["type=bind,target=/x"]}, "needs source=ABSOLUTE_PATH"),
        ({"mounts": ["type=bind,source=rel,target=/x"]}, "needs source=ABSOLUTE_PATH"),
        ({"mounts": ["type=nfs,target=/x"]}, "type must be bind, volume or tmpfs"),
        ({"mounts": ["source=/x"]}, "give target=ABSOLUTE_PATH"),
        ({"mounts": ["type=tmpfs,target=/x,colour=red"]}, "unknown field 'colour'"),
        ({"shm_size": "lots"}, "invalid --shm-size 'lots'"),
        ({"shm_size": "0"}, "invalid --shm-size '0'"),
        ({"memory": "8x"}, "invalid --memory '8x'"),
        ({"cpus": "-1"}, "invalid --cpus '-1'"),
        ({"cpus": "nan"}, "invalid --cpus 'nan'"),
        ({"cpus": "inf"}, "invalid --cpus 'inf'"),
        ({"cpus": "1e400"}, "invalid --cpus '1e400'"),
        ({"cpus": "1e-12"}, "invalid --cpus '1e-12'"),
        ({"mounts": ["type=tmpfs,target=/t,tmpfs-size=abc"]}, "tmpfs-size must be a size"),
        ({"mounts": ["type=tmpfs,target=/t,tmpfs-size=-5"]}, "tmpfs-size must be a size"),
        ({"mounts": ["type=tmpfs,target=/t,tmpfs-mode=999"]}, "tmpfs-mode must be octal"),
        ({"ipc": "shared"}, "invalid --ipc 'shared'"),
        ({"publish": ["70000:80"]}, "invalid --publish '70000:80'"),
        ({"publish": ["a:b"]}, "invalid --publish 'a:b'"),
        ({"workdir": "app"}, "invalid --workdir 'app'"),
        ({"user": "root; rm"}, "invalid --user"),
        ({"network": "my net"}, "invalid --network"),
        ({"labels": ["dev.radops.job-id=x"]}, "dev.radops.* labels are radops'"),
        ({"labels": ["=x"]}, "invalid --label '=x'"),
        ({"entrypoint": "a\nb"}, "cannot contain a newline"),
    ],
)
def test_a_bad_value_is_a_one_line_usage_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_run_options(**kwargs)  # type: ignore[arg-type]
    assert message in caught.value.message and "\n" not in caught.value.message


def test_cpus_become_the_nano_cpus_docker_sends() -> None:
    from radops.executors.run_options import nano_cpus

    assert nano_cpus("1.5") == 1_500_000_000
    assert nano_cpus("0.000000001") == 1
    assert nano_cpus(" 4 ") == 4_000_000_000


def test_sizes_read_as_docker_reads_them() -> None:
    assert size_bytes("64m") == 64 << 20
    assert size_bytes("8g") == 8 << 30
    assert size_bytes("8GB") == 8 << 30
    assert size_bytes("1.5g") == int(1.5 * (1 << 30))
    assert size_bytes("4096") == 4096


def test_env_file_reads_as_docker_does(tmp_path: Path) -> None:
    file = tmp_path / "job.env"
    file.write_text("# W&B\nWANDB_API_KEY=abc=def\n\n  SPACED=1\nFROM_SHELL\nUNSET_HERE\n")
    env = read_env_file(str(file), {"FROM_SHELL": "here"})
    assert env == {"WANDB_API_KEY": "abc=def", "SPACED": "1", "FROM_SHELL": "here"}
    file.write_text("BAD KEY=1\n")
    with pytest.raises(UsageError, match="line 1: expected KEY=VALUE"):
        read_env_file(str(file), {})
    with pytest.raises(UsageError, match="cannot read --env-file"):
        read_env_file(str(tmp_path / "missing.env"), {})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("type=bind,src=/data,dst=/d,readonly,bind-propagation=rshared",
         {"target": "/d", "source": "/data", "type": "bind", "read_only": True,
          "propagation": "rshared"}),
        ("type=volume,source=cache,target=/c,volume-nocopy",
         {"target": "/c", "source": "cache", "type": "volume", "no_copy": True}),
        ("type=tmpfs,target=/scratch,tmpfs-size=64m,tmpfs-mode=1770",
         {"target": "/scratch", "source": None, "type": "tmpfs", "tmpfs_size": 64 << 20,
          "tmpfs_mode": 0o1770}),
        ("target=/v", {"target": "/v", "source": None, "type": "volume"}),
    ],
)  # fmt: skip
def test_a_mount_is_the_engine_json_docker_py_would_send(
    spec: str, expected: dict[str, Any]
) -> None:
    from docker.types import Mount

    from radops.executors.local.create import engine_mount

    assert engine_mount(check_mount(spec)) == dict(Mount(**expected))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("type=volume,source=v,target=/v,bind-propagation=rshared", "bind-propagation"),
        ("type=bind,source=/s,target=/t,volume-nocopy", "volume-nocopy"),
        ("type=bind,source=/s,target=/t,tmpfs-size=1m", "tmpfs-size"),
        ("type=tmpfs,target=/t,volume-nocopy", "volume-nocopy"),
    ],
)
def test_a_mount_option_of_another_type_is_refused(spec: str, field: str) -> None:
    # As the docker CLI (SSH executors) refuses it: the local engine must not drop it quietly.
    with pytest.raises(UsageError, match=f"{field} applies to type="):
        check_mount(spec)
