"""`radops executors gcp ...` end to end: the real google-cloud-compute client, a fake Compute
Engine, and VMs that are real sshd + Docker on loopback."""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from tests import rig
from tests.gce_fake import FakeGCE
from tests.ssh.conftest import CLI


def _config(cli: CLI) -> dict[str, dict[str, object]]:
    path = Path(cli.env["RADOPS_CONFIG_DIR"]) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {"executors": {}, "gcp_pending": {}}


def _ok(result: object) -> None:
    assert result.returncode == 0, result.stderr.decode()  # type: ignore[attr-defined]


def _nothing_left(cli: CLI, fake: FakeGCE, name: str) -> None:
    config = _config(cli)
    assert name not in config["executors"]
    assert name not in config.get("gcp_pending", {})
    assert name not in fake.instances()


def _nothing_left_once_gone(cli: CLI, fake: FakeGCE, name: str) -> None:
    """_nothing_left, once the VM is gone: a failed insert's VM, or one whose delete radops does
    not wait for, vanishes when its operation ends (the fake's 0.2 s later)."""
    _wait_until(lambda: name not in fake.instances(), f"VM {name} to go")
    _nothing_left(cli, fake, name)


def _wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout:.0f}s for {what}"
        time.sleep(0.05)


def test_list_templates_shows_global_and_regional(gcli: CLI) -> None:
    table = gcli("executors", "gcp", "list-templates")
    _ok(table)
    lines = table.stdout.decode().splitlines()
    a100 = next(line for line in lines if line.startswith("a100-1g"))
    assert a100.split() == [
        "a100-1g",
        "a2-highgpu-1g",
        "nvidia-tesla-a100",
        "x",
        "1",
        "common-cu121",
        "us-central1",
    ]
    assert next(line for line in lines if line.startswith("cpu-small")).split()[-1] == "global"
    as_json = json.loads(gcli("executors", "gcp", "list-templates", "--json").stdout)
    assert {t["name"]: t["gpus"] for t in as_json} == {
        "a100-1g": [{"type": "nvidia-tesla-a100", "count": 1}],
        "cpu-small": [],
    }


def test_create_run_logs_stop_start_delete(gcli: CLI, fake: FakeGCE, job_context: Path) -> None:
    # radops' own deadline (90 s) comes before the test's: a VM that never gets ready is
    # reported with radops' reason instead of a bare subprocess timeout.
    created = gcli(
        "executors", "gcp", "create", "cpu-small", "vm1", "--json", "--timeout", "90", timeout=180
    )
    _ok(created)
    spec = json.loads(created.stdout)
    assert (
        spec["kind"] == "gcp"
        and spec["hostname"] == "127.0.0.22"
        and spec["zone"] == "us-central1-a"
    )
    assert spec["project"] == "test-project" and spec["instance"] == "vm1"
    assert spec["host_key_fingerprint"].startswith("SHA256:")
    err = created.stderr.decode()
    for step in ("Creating VM vm1", "Booting vm1", "Waiting for SSH on 127.0.0.22", "vm1: Docker"):
        assert step in err
    vm = fake.instances()["vm1"]
    assert vm["labels"] == {**vm["labels"], "radops-managed": "true", "radops-executor": "vm1"}
    # No key in ~/.ssh: radops made a dedicated key pair, private part 0600.
    key = Path(gcli.env["RADOPS_CONFIG_DIR"]) / "gcp_ed25519"
    assert key.stat().st_mode & 0o777 == 0o600
    assert Path(f"{key}.pub").read_text().split()[1] in vm["metadata"]["items"][-1]["value"]

    job = gcli("executors", "run", "--quiet", "vm1", str(job_context), "sh /job/args.sh on-gcp")
    _ok(job)
    logs = gcli("executors", "logs", "vm1", job.stdout.decode().strip(), "--follow")
    assert logs.stdout == b"<on-gcp>\n"

    _ok(gcli("executors", "gcp", "stop", "vm1"))
    assert fake.instances()["vm1"]["status"] in ("STOPPING", "TERMINATED")
    started = gcli("executors", "gcp", "start", "vm1")
    _ok(started)
    assert "127.0.0.23" in started.stdout.decode()
    assert _config(gcli)["executors"]["vm1"]["hostname"] == "127.0.0.23"
    # A new address, the same pinned host key: trusted without asking, jobs run again.
    again = gcli("executors", "run", "--quiet", "vm1", str(job_context), "sh /job/args.sh back")
    _ok(again)

    deleted = gcli("executors", "gcp", "delete", "vm1", "--yes")
    _ok(deleted)
    _nothing_left(gcli, fake, "vm1")


def test_unknown_template_creates_nothing(gcli: CLI, fake: FakeGCE) -> None:
    result = gcli("executors", "gcp", "create", "no-such-template", "vm2")
    assert result.returncode == 3
    assert "unknown instance template 'no-such-template'" in result.stderr.decode()
    assert not any(method == "POST" for method, _ in fake.requests())
    _nothing_left(gcli, fake, "vm2")


@pytest.mark.parametrize("kind", ["quota", "quota_operation"])
def test_quota_exceeded_leaves_nothing(gcli: CLI, fake: FakeGCE, kind: str) -> None:
    fake.fail_insert("us-central1-a", kind)
    result = gcli("executors", "gcp", "create", "a100-1g", "vm3")
    assert result.returncode == 8
    err = result.stderr.decode()
    assert "quota" in err.lower() and "Traceback" not in err
    _nothing_left_once_gone(gcli, fake, "vm3")


def test_capacity_moves_on_to_the_next_zone(gcli: CLI, fake: FakeGCE) -> None:
    fake.fail_insert("us-central1-a", "capacity")
    result = gcli(
        "executors",
        "gcp",
        "create",
        "cpu-small",
        "vm4",
        "--zones",
        "us-central1-a,us-central1-b",
        "--json",
        timeout=180,
    )
    _ok(result)
    assert (
        "out of capacity" in result.stderr.decode()
        and "trying the next zone" in result.stderr.decode()
    )
    assert json.loads(result.stdout)["zone"] == "us-central1-b"
    _ok(gcli("executors", "gcp", "delete", "vm4", "--yes"))


def test_capacity_in_the_only_zone_is_an_error(gcli: CLI, fake: FakeGCE) -> None:
    fake.fail_insert("us-central1-a", "capacity")
    result = gcli("executors", "gcp", "create", "cpu-small", "vm5")
    assert result.returncode == 8
    assert "zone us-central1-a is out of capacity" in result.stderr.decode()
    _nothing_left_once_gone(gcli, fake, "vm5")


def test_vm_that_never_gets_ready_is_deleted(gcli: CLI, fake: FakeGCE) -> None:
    # The rig's VMs accept no key for this user, so SSH never becomes ready.
    result = gcli(
        "executors",
        "gcp",
        "create",
        "cpu-small",
        "vm6",
        "--username",
        "nobody-here",
        "--timeout",
        "6",
        timeout=120,
    )
    assert result.returncode == 8
    err = result.stderr.decode()
    assert "were not ready within 6s" in err and "Deleting VM vm6 (creation failed)" in err
    _nothing_left(gcli, fake, "vm6")


def test_keep_on_failure_keeps_the_vm_but_registers_nothing(gcli: CLI, fake: FakeGCE) -> None:
    result = gcli(
        "executors",
        "gcp",
        "create",
        "cpu-small",
        "vm7",
        "--username",
        "nobody-here",
        "--timeout",
        "4",
        "--keep-on-failure",
        timeout=120,
    )
    assert result.returncode == 8
    assert "vm7" in fake.instances()
    assert "vm7" not in _config(gcli)["executors"]
    listed = gcli("executors", "gcp", "list", "--json")
    _ok(listed)
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "vm7")
    assert row["executor"] is None and "delete it with" in row["problem"]
    _ok(gcli("executors", "gcp", "delete", "vm7", "--yes"))
    _wait_until(lambda: "vm7" not in fake.instances(), "VM vm7 to go")


def test_gpu_template_without_visible_gpus_is_refused(gcli: CLI, fake: FakeGCE) -> None:
    # The rig's VMs are the stand-in four-GPU box (tests/gpu_standin/): here one that has none.
    count = Path("/tmp/radops-gpu-standin-count")
    count.write_text("0\n")
    try:
        result = gcli("executors", "gcp", "create", "a100-1g", "vm8", "--timeout", "5",
                      timeout=180)  # fmt: skip
    finally:
        count.unlink()
    assert result.returncode == 8
    assert "nvidia-smi sees none" in result.stderr.decode()
    _nothing_left(gcli, fake, "vm8")


def test_ctrl_c_while_waiting_for_ssh_deletes_the_vm(gcli: CLI, fake: FakeGCE) -> None:
    proc = gcli.popen(
        "executors",
        "gcp",
        "create",
        "cpu-small",
        "vm9",
        "--username",
        "nobody-here",
        "--timeout",
        "120",
    )
    assert proc.stderr is not None
    # Inside the SSH wait: its first attempt failed (this user is not on the VM) and it said so.
    seen = _read_until(proc.stderr, b"Not ready yet: ", timeout=120)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = seen + err
    assert proc.returncode == 130, err.decode()
    assert "Deleting VM vm9 (interrupted)" in err.decode()
    _nothing_left(gcli, fake, "vm9")


def _read_until(stream: IO[bytes], text: bytes, timeout: float) -> bytes:
    """What `stream` gave until a line with `text` (an AssertionError after `timeout`)."""
    got = b""
    deadline = time.monotonic() + timeout
    while text not in got:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([stream], [], [], max(left, 0))
        chunk = os.read(stream.fileno(), 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"{text!r} never came: {got.decode(errors='replace')}")
        got += chunk
    return got


def test_list_flags_an_executor_whose_vm_is_gone(gcli: CLI, fake: FakeGCE) -> None:
    _ok(gcli("executors", "gcp", "create", "cpu-small", "vm10", timeout=180))
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import compute_v1

    client = compute_v1.InstancesClient(
        credentials=AnonymousCredentials(), client_options=ClientOptions(api_endpoint=fake.endpoint)
    )
    client.delete_unary(project="test-project", zone="us-central1-a", instance="vm10")
    _wait_until(lambda: "vm10" not in fake.instances(), "VM vm10 to go")
    listed = gcli("executors", "gcp", "list")
    _ok(listed)
    assert "warning: vm10: VM is gone" in listed.stderr.decode()
    # Deleting a VM that is already gone is not an error; the executor goes too.
    deleted = gcli("executors", "gcp", "delete", "vm10", "--yes")
    _ok(deleted)
    assert "already gone" in deleted.stdout.decode()
    assert "vm10" not in _config(gcli)["executors"]


def test_delete_without_terminal_or_yes_refuses(gcli: CLI, fake: FakeGCE) -> None:
    result = gcli("executors", "gcp", "delete", "anything")
    assert result.returncode == 2
    assert "Pass --yes" in result.stderr.decode()


def test_remove_with_delete_vm_deletes_it(gcli: CLI, fake: FakeGCE, tmp_path: Path) -> None:
    # A key radops once trusted at these addresses belonged to an earlier VM: a new VM there
    # must not be refused as a "changed" host key.
    other = rig.keygen(tmp_path / "old_vm_key")
    key_type, key = Path(f"{other}.pub").read_text().split()[:2]
    known = Path(gcli.env["RADOPS_CONFIG_DIR"]) / "known_hosts"
    known.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    known.write_text("".join(f"{ip} {key_type} {key}\n" for ip in ("127.0.0.22", "127.0.0.23")))
    created = gcli("executors", "gcp", "create", "cpu-small", "vm11", "--json", timeout=180)
    _ok(created)
    ip = json.loads(created.stdout)["hostname"]
    _ok(gcli("executors", "remove", "vm11", "--delete-vm"))
    _nothing_left_once_gone(gcli, fake, "vm11")
    # The deleted VM's address is forgotten; the other address's entry is none of its business.
    remaining = [line.split()[0] for line in known.read_text().splitlines()]
    assert ip not in remaining and len(remaining) == 1


def test_no_credentials_is_a_clear_error(gcli: CLI, tmp_path: Path) -> None:
    del gcli.env["RADOPS_GCP_API_ENDPOINT"]
    gcli.env["CLOUDSDK_CONFIG"] = str(tmp_path / "no-gcloud")
    gcli.env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    result = gcli("executors", "gcp", "list-templates")
    assert result.returncode == 4
    err = result.stderr.decode()
    assert "no Google Cloud credentials" in err and "gcloud auth application-default login" in err


def test_help_stays_fast_and_light(gcli: CLI) -> None:
    result = gcli("executors", "gcp", "--help")
    _ok(result)
    assert "list-templates" in result.stdout.decode()
    probe = gcli.env | {"PYTHONPROFILEIMPORTTIME": "1"}
    import subprocess
    import sys

    traced = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "radops", "executors", "gcp", "--help"],
        env=probe,
        capture_output=True,
    )
    assert b"google" not in traced.stderr and b"paramiko" not in traced.stderr


def test_delete_uses_the_executors_own_project(gcli: CLI, fake: FakeGCE) -> None:
    _ok(gcli("executors", "gcp", "create", "cpu-small", "vm12", timeout=180))
    gcli.env["RADOPS_GCP_PROJECT"] = "some-other-project"
    deleted = gcli("executors", "gcp", "delete", "vm12", "--yes")
    _ok(deleted)
    assert "already gone" not in deleted.stdout.decode()
    _nothing_left_once_gone(gcli, fake, "vm12")
