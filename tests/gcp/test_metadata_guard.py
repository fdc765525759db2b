"""The rule that keeps job containers of a radops VM away from the metadata server, run for real
with iptables in network namespaces of this test's own: a "VM" that forwards (as Docker's host
does for its bridge), a "container" behind it, and a "metadata server" at 169.254.169.254
beyond it, each its own namespace, so this machine's own network and firewall are untouched.

Not covered here (no Compute Engine VM on this machine): Google's real metadata route, and a
live dockerd's own FORWARD rules beside the DOCKER-USER jump (the rule relies on Docker's
documented jump at the top of FORWARD, which it makes itself when Docker has not yet).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from radops.gcp import metadata_guard

# Addresses nothing on this machine routes (10.231.x), and the metadata IP inside the namespaces.
VM_TO_SERVER = ("10.231.7.1/30", "10.231.7.2/30")
VM_TO_JOB = ("10.231.8.1/24", "10.231.8.2/24")
FETCH = (
    "import sys, urllib.request\n"
    "try:\n"
    "    print(urllib.request.urlopen('http://169.254.169.254/token', timeout=5).read().decode())\n"
    "except OSError as e:\n"
    "    print('refused', e); sys.exit(1)\n"
)


@dataclass
class Net:
    vm: str
    job: str
    server: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _in(ns: str, *argv: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          input=input, timeout=30, check=False)  # fmt: skip


def _link(a: str, b: str, tag: str, addresses: tuple[str, str]) -> None:
    """A veth pair between namespaces a and b, with addresses[0] on a's end, [1] on b's."""
    ends = (f"{tag}a", f"{tag}b")
    _ip("link", "add", ends[0], "netns", a, "type", "veth", "peer", ends[1], "netns", b)
    for ns, end, address in ((a, ends[0], addresses[0]), (b, ends[1], addresses[1])):
        _ip("-n", ns, "addr", "add", address, "dev", end)
        _ip("-n", ns, "link", "set", end, "up")


@pytest.fixture
def net() -> Iterator[Net]:
    tag = secrets.token_hex(3)
    names = Net(f"radops-vm-{tag}", f"radops-job-{tag}", f"radops-md-{tag}")
    made: list[str] = []
    server: subprocess.Popen[bytes] | None = None
    try:
        for ns in (names.vm, names.job, names.server):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _link(names.vm, names.server, f"s{tag}", VM_TO_SERVER)
        _link(names.vm, names.job, f"j{tag}", VM_TO_JOB)
        _ip("-n", names.server, "addr", "add", "169.254.169.254/32", "dev", "lo")
        _ip("-n", names.server, "route", "add", "default", "via", VM_TO_SERVER[0].split("/")[0])
        _ip("-n", names.job, "route", "add", "default", "via", VM_TO_JOB[0].split("/")[0])
        _ip("-n", names.vm, "route", "add", "169.254.169.254/32", "via",
            VM_TO_SERVER[1].split("/")[0])  # fmt: skip
        assert _in(names.vm, "sysctl", "-qw", "net.ipv4.ip_forward=1").returncode == 0
        serve = ("import http.server as h\nclass T(h.BaseHTTPRequestHandler):\n"
                 "    def do_GET(self):\n        self.send_response(200); self.end_headers()\n"
                 "        self.wfile.write(b'token-xyz')\n"
                 "h.HTTPServer(('', 80), T).serve_forever()\n")  # fmt: skip
        server = subprocess.Popen(
            ["ip", "netns", "exec", names.server, sys.executable, "-c", serve]
        )
        deadline = time.monotonic() + 10
        while _in(names.vm, sys.executable, "-c", FETCH).returncode != 0:
            assert time.monotonic() < deadline, "the stand-in metadata server did not answer"
            time.sleep(0.2)
        yield names
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        for ns in made:
            subprocess.run(["ip", "netns", "delete", ns], check=False)


def _fetch(ns: str) -> str:
    return _in(ns, sys.executable, "-c", FETCH).stdout.strip()


def test_job_containers_are_refused_and_the_vm_itself_is_not(net: Net) -> None:
    assert _fetch(net.job) == "token-xyz"  # before: a job takes the VM's token
    for _ in range(2):  # at every boot: the same rules again change nothing
        done = _in(net.vm, "sh", "-c", metadata_guard.RULES)
        assert done.returncode == 0, done.stderr
    assert _fetch(net.job).startswith("refused"), "a job still reaches the metadata server"
    assert _fetch(net.vm) == "token-xyz"  # the watcher, the guest agent: through OUTPUT
    rules = _in(net.vm, "iptables", "-S").stdout.splitlines()
    assert rules.count("-A DOCKER-USER -d 169.254.169.254/32 -j REJECT --reject-with "
                       "icmp-port-unreachable") == 1  # fmt: skip
    assert rules.count("-A FORWARD -j DOCKER-USER") == 1
    other = _in(net.job, sys.executable, "-c", FETCH.replace("169.254.169.254", "10.231.7.2"))
    assert other.returncode == 0  # the rest of the network is still reachable from a job


def test_the_install_touches_nothing_off_compute_engine(net: Net) -> None:
    before = _in(net.vm, "iptables", "-S").stdout
    done = _in(net.vm, *metadata_guard.install_argv())
    assert done.stdout == "radops:guard skipped not a Compute Engine VM\n", done
    assert metadata_guard.parse_install(done.stdout) == ("skipped", "not a Compute Engine VM")
    assert _in(net.vm, "iptables", "-S").stdout == before
    assert _fetch(net.job) == "token-xyz"
