"""A GCP VM's host key: pinned from what the VM publishes, and a pin that nothing overrides.

The fake Compute Engine publishes the rig VMs' real sshd host key as guest attributes
(`hostkeys/`), read by radops through the real google-cloud-compute client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

from tests import rig
from tests.gce_fake import FakeGCE
from tests.gcp.test_gcp_cli import _config, _nothing_left, _ok
from tests.ssh.conftest import CLI


def _fingerprint(blob_b64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(blob_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _vm_key(cloud_vms: rig.CloudVMs) -> tuple[str, str]:
    key_type, blob = cloud_vms.host_key_pub.read_text().split()[:2]
    return key_type, blob


def _other_key(tmp_path: Path) -> tuple[str, str]:
    key_type, blob = Path(f"{rig.keygen(tmp_path / 'other')}.pub").read_text().split()[:2]
    return key_type, blob


def _create(gcli: CLI, name: str, *extra: str) -> tuple[int, str, str]:
    result = gcli(
        "executors", "gcp", "create", "cpu-small", name, "--json", "--timeout", "60", *extra,
        timeout=150,
    )  # fmt: skip
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_the_published_key_is_pinned_without_trust_on_first_use(
    gcli: CLI, fake: FakeGCE, cloud_vms: rig.CloudVMs
) -> None:
    code, out, err = _create(gcli, "pin1")
    assert code == 0, err
    assert json.loads(out)["host_key_fingerprint"] == _fingerprint(_vm_key(cloud_vms)[1])
    assert "publishes no SSH host keys" not in err
    # The guest agent publishes host keys only with guest attributes on: radops turns them on.
    items = fake.instances()["pin1"]["metadata"]["items"]
    assert {"key": "enable-guest-attributes", "value": "TRUE"} in items
    _ok(gcli("executors", "gcp", "delete", "pin1", "--yes"))


def test_connect_lets_openssh_trust_only_the_pinned_key(
    gcli: CLI, fake: FakeGCE, tmp_path: Path, cloud_vms: rig.CloudVMs
) -> None:
    code, _, err = _create(gcli, "pin5")
    assert code == 0, err
    printed = gcli("executors", "connect", "pin5", "--print")
    _ok(printed)
    argv = printed.stdout.decode().split()
    assert "StrictHostKeyChecking=yes" in argv and "GlobalKnownHostsFile=/dev/null" in argv
    # OpenSSH trusts a file of the pinned key alone (kept for the printed command), under the
    # alias it is told to look it up by.
    kept = Path(gcli.env["RADOPS_CONFIG_DIR"]) / "pinned_hosts" / "pin5"
    assert f"UserKnownHostsFile={kept}" in argv and "HostKeyAlias=radops-pinned-host" in argv
    assert kept.read_text() == "radops-pinned-host {} {}\n".format(*_vm_key(cloud_vms))
    # The command works as printed, with OpenSSH itself (no question: BatchMode).
    ran = subprocess.run(
        [*argv[:-1], "-o", "BatchMode=yes", argv[-1], "true"],
        env=gcli.env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr.decode()
    # With a pin the machine does not match, connect refuses before OpenSSH is started.
    config_file = Path(gcli.env["RADOPS_CONFIG_DIR"]) / "config.json"
    config = _config(gcli)
    config["executors"]["pin5"]["host_key_fingerprint"] = _fingerprint(_other_key(tmp_path)[1])  # type: ignore[index]
    config_file.write_text(json.dumps(config))
    refused = gcli("executors", "connect", "pin5", "--print")
    assert refused.returncode == 7, refused.stderr.decode()
    assert refused.stdout == b""
    _ok(gcli("executors", "gcp", "delete", "pin5", "--yes"))


def test_a_vm_showing_another_key_than_it_published_is_refused_and_deleted(
    gcli: CLI, fake: FakeGCE, tmp_path: Path
) -> None:
    fake.host_keys = [_other_key(tmp_path)]
    code, _, err = _create(gcli, "pin2")
    assert code == 7, err
    assert "is not the one pinned for this executor" in err and "Traceback" not in err
    assert "Deleting VM pin2" in err
    _nothing_left(gcli, fake, "pin2")
    # Nothing was learnt about the impostor's key either.
    known = Path(gcli.env["RADOPS_CONFIG_DIR"]) / "known_hosts"
    assert not known.exists() or "127.0.0.2" not in known.read_text()


def test_an_image_that_publishes_no_keys_falls_back_to_first_use_and_says_so(
    gcli: CLI, fake: FakeGCE, cloud_vms: rig.CloudVMs
) -> None:
    fake.host_keys = []
    code, out, err = _create(gcli, "pin3", "--timeout", "8")
    assert code == 0, err
    assert "pin3 publishes no SSH host keys (guest attributes)" in err
    assert json.loads(out)["host_key_fingerprint"] == _fingerprint(_vm_key(cloud_vms)[1])
    _ok(gcli("executors", "gcp", "delete", "pin3", "--yes"))


def test_a_stored_pin_is_enforced_whatever_the_flags(
    gcli: CLI, fake: FakeGCE, tmp_path: Path
) -> None:
    code, _, err = _create(gcli, "pin4")
    assert code == 0, err
    config_file = Path(gcli.env["RADOPS_CONFIG_DIR"]) / "config.json"
    config = _config(gcli)
    wrong = _fingerprint(_other_key(tmp_path)[1])
    config["executors"]["pin4"]["host_key_fingerprint"] = wrong  # type: ignore[index]
    config_file.write_text(json.dumps(config))
    # The key the VM shows is in radops' known_hosts (accepted at create): still refused.
    checked = gcli("executors", "check", "pin4", "--accept-host-key")
    assert checked.returncode == 7, checked.stderr.decode()
    assert "is not the one pinned for this executor" in checked.stderr.decode()
    # And at a new address with no known_hosts entry (after `gcp start`), the flag that
    # accepts unknown keys does not accept it either, nor is it saved.
    (Path(gcli.env["RADOPS_CONFIG_DIR"]) / "known_hosts").unlink()
    again = gcli("executors", "check", "pin4", "--accept-host-key")
    assert again.returncode == 7, again.stderr.decode()
    assert not (Path(gcli.env["RADOPS_CONFIG_DIR"]) / "known_hosts").exists()
    assert _config(gcli)["executors"]["pin4"]["host_key_fingerprint"] == wrong  # type: ignore[index]
    _ok(gcli("executors", "gcp", "delete", "pin4", "--yes"))
