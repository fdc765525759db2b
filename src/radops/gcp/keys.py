"""The SSH key a new VM is given: the user's own, else a dedicated pair in radops' config folder."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
DEDICATED_KEY = "gcp_ed25519"


def ssh_key_pair(config_dir: Path) -> tuple[Path, str]:
    """(private key path, public key line) to put on a new VM."""
    for name in DEFAULT_KEYS:
        private = Path("~/.ssh").expanduser() / name
        public = private.with_suffix(".pub")
        if private.is_file() and public.is_file():
            return private, public.read_text().strip()
    private = config_dir / DEDICATED_KEY
    if not private.is_file():
        _generate(private)
    return private, private.with_suffix(".pub").read_text().strip()


def _generate(private: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    body = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    private.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(body)
    private.with_suffix(".pub").write_text(public.decode() + " radops-gcp\n")


def with_ssh_key(metadata: dict[str, str], username: str, public_key: str) -> dict[str, str]:
    """Metadata with `username:public_key` added to its `ssh-keys` lines (others kept)."""
    lines = [line for line in metadata.get("ssh-keys", "").splitlines() if line.strip()]
    entry = f"{username}:{public_key}"
    if entry not in lines:
        lines.append(entry)
    return {**metadata, "ssh-keys": "\n".join(lines)}
