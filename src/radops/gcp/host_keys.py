"""How radops comes to trust a new VM's SSH host key: the keys its guest agent publishes."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from radops.executors.model import ConnectOptions
    from radops.gcp.compute import Compute
    from radops.progress import ProgressCallback
    from radops.specs import GCPExecutorSpec

# The instance metadata key that makes the guest agent publish guest attributes (host keys).
GUEST_ATTRIBUTES_KEY = "enable-guest-attributes"
# How long a new VM may take to publish its host keys (guest attributes) before radops falls
# back to trusting the key it shows on first contact; at most half of the readiness budget.
HOST_KEYS_WAIT_S = 60


class HostKeyTrust:
    """How a new VM's host key becomes trusted: the keys its guest agent publishes (guest
    attributes `hostkeys/`, read with the Compute API) are pinned; an image that publishes none
    within `wait` seconds gets trust on first use, and the user is told."""

    def __init__(
        self, compute: Compute, spec: GCPExecutorSpec, wait: float, progress: ProgressCallback
    ) -> None:
        self.compute = compute
        self.spec = spec
        self.deadline = time.monotonic() + wait
        self.progress = progress
        self.told = False
        self.pins: frozenset[str] = frozenset()  # once published, kept: they do not change

    def options(self) -> ConnectOptions | None:
        """The options for the next attempt; None while waiting for the keys."""
        from radops.executors.model import ConnectOptions

        if not self.pins:
            self.pins = _fingerprints(self.compute.host_keys(self.spec.zone, self.spec.instance))
        if self.pins:
            return ConnectOptions(pinned_host_keys=self.pins)
        if time.monotonic() < self.deadline:
            return None
        if not self.told:
            self.progress(
                f"{self.spec.name} publishes no SSH host keys (guest attributes); trusting the "
                "key it shows on first contact"
            )
            self.told = True
        return ConnectOptions(trust_new_target_key=True)  # not the ProxyJump hosts


def _fingerprints(keys: list[tuple[str, str]]) -> frozenset[str]:
    """The SHA256 fingerprints of published (key type, base64 blob) keys; a value that is not
    base64 is skipped (it cannot be the key the VM shows)."""
    import base64
    import binascii

    from radops.ssh.hostkeys import blob_fingerprint

    found = set()
    for _, blob in keys:
        try:
            found.add(blob_fingerprint(base64.b64decode(blob, validate=True)))
        except (binascii.Error, ValueError):
            continue
    return frozenset(found)
