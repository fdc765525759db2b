"""Fixtures for GCP tests: the fake Compute Engine, whose VMs are sshd on other loopback IPs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import rig
from tests.gce_fake import FakeGCE
from tests.ssh.conftest import CLI, job_context  # noqa: F401  (a fixture the tests use)

PROJECT = "test-project"
VM_IPS = ["127.0.0.22", "127.0.0.23"]


@pytest.fixture(scope="session")
def cloud_vms(
    tmp_path_factory: pytest.TempPathFactory, remote: rig.RemoteHost
) -> Iterator[rig.CloudVMs]:
    with rig.cloud_vms(tmp_path_factory.mktemp("vms"), remote, VM_IPS) as vms:
        yield vms


@pytest.fixture
def fake(cloud_vms: rig.CloudVMs) -> Iterator[FakeGCE]:
    # The VMs publish their sshd's real host key as guest attributes, as the guest agent does.
    key_type, blob = cloud_vms.host_key_pub.read_text().split()[:2]
    gce = FakeGCE(
        project=PROJECT, ips=VM_IPS, on_ssh_keys=cloud_vms.set_ssh_keys, op_delay=0.2,
        boot_step=0.2, host_keys=[(key_type, blob)],
    )  # fmt: skip
    gce.add_template("cpu-small", machine_type="e2-standard-4")
    gce.add_template(
        "a100-1g", region="us-central1", machine_type="a2-highgpu-1g",
        gpu_type="nvidia-tesla-a100", gpu_count=1,
        image="projects/deeplearning-platform-release/global/images/family/common-cu121",
    )  # fmt: skip
    with gce:
        yield gce
    assert not gce.callback_errors


def gcp_cli(tmp_path: Path, endpoint: str, **extra: str) -> CLI:
    """The CLI with a HOME that has no SSH keys, pointed at the Compute Engine at `endpoint`."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RADOPS_", "SSH_AUTH"))}
    env.update(
        HOME=str(home),
        RADOPS_CONFIG_DIR=str(tmp_path / "config"),
        RADOPS_GCP_API_ENDPOINT=endpoint,
        RADOPS_GCP_PROJECT=PROJECT,
        RADOPS_GCP_ZONE="us-central1-a",
        NO_GCE_CHECK="true",  # google-auth must never probe a metadata server from here
        PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"),
        **extra,
    )
    return CLI(env, home)


@pytest.fixture
def gcli(tmp_path: Path, fake: FakeGCE) -> CLI:
    """The CLI pointed at the fake Compute Engine."""
    return gcp_cli(
        tmp_path,
        fake.endpoint,
        RADOPS_SSH_PERSIST="0",  # tests that want shared connections say so
        RADOPS_GCP_POLL_S="0.2",  # the fake boots in steps of 0.2 s, not a real VM's seconds
    )
