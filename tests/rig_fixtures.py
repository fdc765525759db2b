"""Session fixtures for the rig's real parts, shared by the SSH and GCP tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import rig


@pytest.fixture(scope="session")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rig.RemoteHost]:
    """The remote engine, the registry and sshd, started once for the whole session."""
    with rig.machine_lock(), rig.remote_host(tmp_path_factory.mktemp("rig")) as host:
        yield host
