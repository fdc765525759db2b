"""How radops writes an SSH machine for people: `[::1]:2222`, never `::1:2222` (which reads as
an address), the same in `add`'s answer (the spec's text) and in errors (the resolved target)."""

from __future__ import annotations

import pytest

from radops.specs import SSHHost
from radops.ssh.config import SSHTarget


@pytest.mark.parametrize(
    ("hostname", "port", "text"),
    [
        ("::1", 2222, "root@[::1]:2222"),
        ("fe80::1", 2222, "root@[fe80::1]:2222"),
        ("::1", 22, "root@::1"),
        ("gpu1.lab", 2222, "root@gpu1.lab:2222"),
        ("gpu1.lab", 22, "root@gpu1.lab"),
    ],
)
def test_a_port_after_an_ipv6_address_is_bracketed(hostname: str, port: int, text: str) -> None:
    assert SSHTarget("m", hostname, port, "root").display == text
    if port != 22:
        assert SSHHost(hostname=hostname, port=port, username="root").text() == text
