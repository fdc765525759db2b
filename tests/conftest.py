"""Shared fixtures: an isolated config folder for every test, the real Docker engine, job cleanup.

Job containers and images that a test session creates carry a per-session prefix in their image
name (`radops/rt<session>-...`), so the session can remove exactly its own leftovers, even those
whose job id was never printed (a run that failed after creating its container).
"""

from __future__ import annotations

import contextlib
import secrets
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The contract suite is a plain module, so its asserts need rewriting to explain failures.
pytest.register_assert_rewrite("tests.executors.contract")

from tests.cli_process import describe, radops  # noqa: E402

pytest_plugins = ("tests.rig_fixtures",)

# Tests press Ctrl-C (SIGINT) on radops processes, as a user at a terminal does. A suite started
# in the background of a script (`cmd &` without job control, or under nohup) inherits SIGINT
# ignored, and so would every radops it starts: Ctrl-C would then do nothing (as it should for
# a background job), and those tests would fail for the launcher's reason. A handler here is
# reset to the default in each child at exec, so the children get a terminal's Ctrl-C.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# What real part a test needs, from the fixtures it uses (directly or through other fixtures):
# each becomes a marker, so `-m "not (engine or rig or slurm or gcp_vm or root)"` (the fast
# tier, `./scripts/test.sh --fast`) runs only what needs none. `root` is set by hand.
NEEDS = {
    "engine": "docker_client",  # the local Docker engine
    "rig": "remote",  # the SSH rig: a second engine behind sshd, and registries
    "slurm": "slurm",  # the Slurm rig
    "gcp_vm": "cloud_vms",  # the fake GCP VMs' sshd on the rig
}


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixture in NEEDS.items():
            if fixture in used:
                item.add_marker(marker)
    _select_by_features(config, items)


def _select_by_features(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Contract tests marked `needs(Feature.X)` run only for the executor kinds that offer X
    (the contract class names its kind: `kind_class`); for the others they are deselected,
    and the contract checks that the kind refuses X instead."""
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("needs")
        kind = getattr(getattr(item, "cls", None), "kind_class", None)
        if marker is not None and kind is not None and not set(marker.args) <= kind.features:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


SESSION = secrets.token_hex(3)
CONTEXT_PREFIX = f"rt{SESSION}-"
IMAGE_PREFIX = f"radops/{CONTEXT_PREFIX}"
BASE_IMAGE = "busybox:1.36"
SETTINGS_ENV = (
    "RADOPS_REGISTRY",
    "RADOPS_GCP_PROJECT",
    "RADOPS_GCP_ZONE",
    "RADOPS_GCP_API_ENDPOINT",
    "RADOPS_GCP_AUTOSTOP",
    "RADOPS_GCP_POLL_S",
)

# An image whose entrypoint prints each argument it receives on a line of its own.
ARGV_DOCKERFILE = f"""FROM {BASE_IMAGE}
COPY args.sh /args.sh
ENTRYPOINT ["/bin/sh", "/args.sh"]
"""
ARGV_SCRIPT = 'for arg in "$@"; do printf "%s\\n" "$arg"; done\n'
# A plain busybox image: the job's arguments are the program to run (`sh -c ...`, `sleep 300`).
TOOLS_DOCKERFILE = f"FROM {BASE_IMAGE}\nCOPY marker.txt /marker.txt\n"


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty config folder; no setting leaks in from the environment."""
    config = tmp_path / "radops-config"
    monkeypatch.setenv("RADOPS_CONFIG_DIR", str(config))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    for name in (*SETTINGS_ENV, "RADOPS_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    # No shared SSH connections outliving a test, unless the test asks for them.
    monkeypatch.setenv("RADOPS_SSH_PERSIST", "0")
    return config


def write_context(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return folder


@pytest.fixture
def make_context(tmp_path: Path) -> Callable[..., Path]:
    """A build context folder named so that its image and jobs belong to this session."""

    def make(name: str, files: dict[str, str | bytes]) -> Path:
        return write_context(tmp_path / "contexts" / f"{CONTEXT_PREFIX}{name}", files)

    return make


@pytest.fixture(scope="session")
def argv_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("argv")
    files: dict[str, str | bytes] = {"Dockerfile": ARGV_DOCKERFILE, "args.sh": ARGV_SCRIPT}
    return write_context(root / f"{CONTEXT_PREFIX}argv", files)


@pytest.fixture(scope="session")
def tools_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tools")
    files: dict[str, str | bytes] = {"Dockerfile": TOOLS_DOCKERFILE, "marker.txt": SESSION}
    return write_context(root / f"{CONTEXT_PREFIX}tools", files)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """The real local engine. Tests that need it fail (never skip) when it does not answer."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # any failure to reach the engine fails the test loudly
        pytest.fail(f"the tests need a running Docker engine (start dockerd): {e}")
    _check_engine_starts_containers(client)
    yield client
    _remove_session_leftovers(client)
    client.close()


def _check_engine_starts_containers(client: Any) -> None:
    import docker.errors

    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{BASE_IMAGE} is missing from the engine; run scripts/bootstrap.sh")
    try:
        client.containers.run(BASE_IMAGE, ["true"], remove=True)
    except docker.errors.APIError as e:
        hint = ""
        if "docker0" in str(e):
            # dockerd started with --bridge=none (as test rigs do) deletes the host's docker0.
            hint = (
                " docker0 is gone (a dockerd started with --bridge=none deletes it); restore it "
                "with: ip link add docker0 type bridge && ip addr add 172.17.0.1/16 dev docker0 "
                "&& ip link set docker0 up (or restart dockerd)"
            )
        pytest.fail(f"the Docker engine cannot start a container: {e}.{hint}")


def _remove_session_leftovers(client: Any) -> None:
    import docker.errors

    # (Another test session on the engine may remove its own jobs meanwhile: those are skipped.)
    jobs = client.containers.list(
        all=True, filters={"label": "dev.radops.job-id"}, ignore_removed=True
    )
    for container in jobs:
        if container.labels.get("dev.radops.image", "").startswith(IMAGE_PREFIX):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
    for image in client.images.list(filters={"reference": f"{IMAGE_PREFIX}*"}):
        for tag in image.tags:
            # An image still used by another run's container stays.
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(tag, force=True)


def remove_job_container(client: Any, job_id: str) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_container(f"radops-{job_id}", force=True)


@pytest.fixture
def job_ids(docker_client: Any) -> Iterator[list[str]]:
    """Append every job id a test starts; their containers are removed afterwards."""
    ids: list[str] = []
    yield ids
    for job_id in ids:
        remove_job_container(docker_client, job_id)


@pytest.fixture
def start_job(job_ids: list[str]) -> Callable[..., str]:
    """`radops executors run local CONTEXT [OPTIONS] --quiet -- COMMAND...`; returns the job id."""

    def start(context: Path, *command: str, options: tuple[str, ...] = ()) -> str:
        result = radops("executors", "run", "local", str(context), *options, "-q", "--", *command)
        assert result.returncode == 0, describe(result)
        job_id = result.stdout.strip()
        job_ids.append(job_id)
        return job_id

    return start


@pytest.fixture
def wait_job(docker_client: Any) -> Callable[[str], int]:
    """Wait (through the engine itself) for a job's container to exit; return its exit code."""

    def wait(job_id: str) -> int:
        return int(docker_client.api.wait(f"radops-{job_id}", timeout=60)["StatusCode"])

    return wait


@pytest.fixture
def inspect_job(docker_client: Any) -> Callable[[str], dict[str, Any]]:
    def inspect(job_id: str) -> dict[str, Any]:
        data: dict[str, Any] = docker_client.api.inspect_container(f"radops-{job_id}")
        return data

    return inspect


@dataclass
class InProcessResult:
    returncode: int
    stdout: str
    stderr: str


def run_main(capture: pytest.CaptureFixture[Any], args: tuple[str, ...]) -> tuple[int, Any, Any]:
    """`radops ARGS...` in this process: (exit code, stdout, stderr) as `capture` holds them."""
    from radops.cli import main

    capture.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capture.readouterr()
    return code, out, err


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Callable[..., InProcessResult]:
    """Run `radops ARGS...` in this process (faster than a subprocess, for text-only checks)."""

    def run(*args: str) -> InProcessResult:
        return InProcessResult(*run_main(capsys, args))

    return run
