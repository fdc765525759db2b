"""The default ship path with no registry configured (`--transfer tunnel`), end to end on the
rig: radops' own registry on this machine's loopback, pulled by the remote engine through a
port forward of the real sshd; its fallback to the SSH stream; nothing left running or
listening afterwards; several runs at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import rig
from tests.ssh.conftest import CLI


@pytest.fixture
def no_registry(cli: CLI) -> CLI:
    """The CLI with no registry configured: the default path is the tunnel."""
    del cli.env["RADOPS_REGISTRY"]
    return cli


def _listening() -> set[str]:
    """Every TCP listener on this machine (the rig's remote is this machine too)."""
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines() if line.strip()}


def _tunnel_ports(err: str) -> set[str]:
    """The addresses the run used: its registry here and sshd's listener there."""
    found = re.search(
        r"^Path: tunnel \(radops' registry on (\S+) here, .* from (\S+) there", err, re.M
    )
    assert found, err
    return {found[1], found[2]}


def _registries() -> list[str]:
    """Running registry processes that serve a radops shipping registry config."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "radops-ship-registry-" in line]


def _submit(cli: CLI, box: str, folder: Path, *flags: str) -> tuple[dict[str, str], str]:
    result = cli("executors", "run", box, str(folder), "sh /job/args.sh hi", "--json", *flags)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    return json.loads(result.stdout), err


def _logs(cli: CLI, box: str, job: str) -> bytes:
    result = cli("executors", "logs", box, job, "--follow")
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_no_registry_and_no_flags_ship_through_the_tunnel_and_leave_nothing_running(
    no_registry: CLI, box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    cli = no_registry
    job, err = _submit(cli, box, job_context)
    assert "Path: tunnel" in err, err
    assert not _tunnel_ports(err) & _listening()  # no registry here, no forward there
    # The transfer's summary: bytes through the tunnel.
    assert re.search(r"Sending \S+ to box \(tunnel\): [\d.]+ [kMG]?B", err), err
    image = job["image"]
    assert image.startswith(f"radops/{job_context.name}:")  # the same name as the stream's
    assert remote.docker("image", "inspect", image).returncode == 0
    tags = remote.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert "radops/ship" not in tags  # the tunnel's name is gone with its port
    assert _logs(cli, box, job["job_id"]) == b"<hi>\n"
    assert _registries() == []
    # Storage kept for the next change, private to the user.
    storage = cli.home / ".cache" / "radops" / "ship-registry"
    assert (storage.stat().st_mode & 0o777) == 0o700
    assert (storage / "docker" / "registry" / "v2" / "repositories" / "radops" / "ship").is_dir()

    # A one-line change: only the new layer is pushed (the engine remembers the others).
    (job_context / "nonce").write_text(uuid.uuid4().hex)
    job, err = _submit(cli, box, job_context)
    assert "Path: tunnel" in err, err
    pushed = re.findall(r"Pushed layer \S+", err)
    assert len(pushed) == 1, err
    assert _logs(cli, box, job["job_id"]) == b"<hi>\n"
    assert _registries() == []
    assert not _tunnel_ports(err) & _listening()


def test_without_a_registry_program_the_stream_ships_and_says_why(
    no_registry: CLI, box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    no_registry.env["RADOPS_SHIP_REGISTRY_BIN"] = ""
    job, err = _submit(no_registry, box, job_context)
    assert "Path: SSH stream to box (no registry program here" in err, err
    assert re.search(r"Sending \S+ to box[^:\n]*: [\d.]+ [kMG]?B", err), err
    assert remote.docker("image", "inspect", job["image"]).returncode == 0
    assert _logs(no_registry, box, job["job_id"]) == b"<hi>\n"


@pytest.fixture
def refusing_box(no_registry: CLI, remote: rig.RemoteHost, tmp_path: Path) -> Iterator[str]:
    """Executor `strict`: the rig's engine behind a second sshd that refuses port forwards
    (`AllowTcpForwarding no`, as some hardened machines have it)."""
    folder = tmp_path / "strict-sshd"
    folder.mkdir()
    authorized = folder / "authorized_keys"
    authorized.write_text(Path(f"{remote.client_key}.pub").read_text())
    port = rig.free_port()
    assert remote.docker_config is not None
    sshd = rig._run_sshd(
        folder, [("127.0.0.1", port)], authorized, remote.docker_host, remote.docker_config,
        forwarding=False,
    )  # fmt: skip
    try:
        added = no_registry(
            "executors", "add", "--name", "strict", "--hostname", f"127.0.0.1:{port}",
            "--username", "root", "--identity-file", str(remote.client_key), "--accept-host-key",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr.decode()
        yield "strict"
    finally:
        os.killpg(sshd.pid, signal.SIGTERM)
        sshd.wait(timeout=20)


def test_an_sshd_that_refuses_the_forward_gets_the_stream_and_it_says_why(
    no_registry: CLI, refusing_box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    """The image went into radops' registry here, but the remote cannot pull it: the stream
    ships it instead, the job runs, and nothing is left running or listening."""
    job, err = _submit(no_registry, refusing_box, job_context)
    assert "Path: SSH stream to strict (strict refused a port forward" in err, err
    assert "Path: tunnel" not in err, err
    assert remote.docker("image", "inspect", job["image"]).returncode == 0
    assert _logs(no_registry, refusing_box, job["job_id"]) == b"<hi>\n"
    assert _registries() == []


def test_a_push_radops_own_registry_refuses_falls_back_to_the_stream_and_leaves_no_tag(
    no_registry: CLI, box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    """Its storage unwritable (as a full disk would be): nothing happened on the remote yet,
    so the stream ships, and says why; the local tag the push made is gone."""
    storage = no_registry.home / ".cache" / "radops" / "ship-registry"
    storage.mkdir(parents=True)
    (storage / "docker").write_text("not a folder")  # every blob write of the registry fails
    job, err = _submit(no_registry, box, job_context)
    assert "Path: SSH stream to box (push to 127.0.0.1:" in err, err
    assert _logs(no_registry, box, job["job_id"]) == b"<hi>\n"
    assert _registries() == []
    out = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True, text=True, check=True, env=no_registry.env,
    ).stdout  # fmt: skip
    from radops.images.shipregistry import ship_tag

    assert f"/radops/ship:{ship_tag(job['image'])}" not in out, out


def test_big_layers_the_registry_lacks_go_by_stream_then_fill_it_then_the_tunnel(
    no_registry: CLI, box: str, job_context: Path, remote: rig.RemoteHost
) -> None:
    """Layers over the limit that radops' registry lacks: the first ship streams them (as
    before the tunnel), the second streams and fills the registry, the third takes the tunnel."""
    cli = no_registry
    cli.env["RADOPS_TUNNEL_WARM_BYTES"] = "100000"  # busybox: 2 MB, big here
    _, err = _submit(cli, box, job_context)
    assert "Path: SSH stream (radops' registry lacks" in err and "the next ship" in err, err
    (job_context / "nonce").write_text(uuid.uuid4().hex)
    _, err = _submit(cli, box, job_context)
    assert "filling it now" in err, err
    (job_context / "nonce").write_text(uuid.uuid4().hex)
    job, err = _submit(cli, box, job_context)
    assert "Path: tunnel" in err, err
    assert len(re.findall(r"Pushed layer \S+", err)) == 1, err
    assert _logs(cli, box, job["job_id"]) == b"<hi>\n"
    assert _registries() == []


def test_runs_at_once_each_ship_through_their_own_registry(
    no_registry: CLI, box: str, tmp_path: Path, remote: rig.RemoteHost
) -> None:
    cli = no_registry
    folders = []
    for i in range(3):
        folder = tmp_path / f"at-once-{i}-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        (folder / "Dockerfile").write_text("FROM busybox:1.36\nCOPY . /job\n")
        (folder / "args.sh").write_text('for a in "$@"; do printf "<%s>\\n" "$a"; done\n')
        folders.append(folder)
    procs = [
        cli.popen("executors", "run", box, str(f), "sh /job/args.sh hi", "--json") for f in folders
    ]
    used: list[set[str]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        assert b"Path: tunnel" in err, err.decode()
        used.append(_tunnel_ports(err.decode()))
        job = json.loads(out)
        assert _logs(cli, box, job["job_id"]) == b"<hi>\n"
    assert _registries() == []
    assert not set().union(*used) & _listening()


@pytest.mark.parametrize("flags", [(), ("--transfer", "ssh")])
def test_runs_of_one_folder_at_once_ship_the_image_once(
    no_registry: CLI, box: str, job_context: Path, remote: rig.RemoteHost, flags: tuple[str, ...]
) -> None:
    cli = no_registry
    argv = ("executors", "run", box, str(job_context), "sh /job/args.sh hi", "--json", *flags)
    procs = [cli.popen(*argv) for _ in range(4)]
    shipped = 0
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        text = err.decode()
        assert proc.returncode == 0, text
        shipped += len(re.findall(r"^(Path: |Sending \S+ to box)", text, re.M)) and 1
        if "Path: " not in text and "Sending" not in text:  # it found the image there
            assert "another radops shipped it" in text or "nothing to ship" in text, text
        job = json.loads(out)
        assert _logs(cli, box, job["job_id"]) == b"<hi>\n"
    assert shipped == 1
