"""The executor store: one JSON file, locked, replaced atomically, 0600 in 0700."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from radops.errors import ConfigError, NotFoundError, UsageError
from radops.specs import LocalExecutorSpec, SSHExecutorSpec
from radops.store import ExecutorStore, config_dir


def ssh(name: str, hostname: str = "host.example") -> SSHExecutorSpec:
    return SSHExecutorSpec(name=name, hostname=hostname)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_dir_follows_radops_config_dir(isolated_config: Path) -> None:
    assert config_dir() == isolated_config
    assert ExecutorStore().path == isolated_config / "config.json"


def test_config_dir_follows_xdg_config_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RADOPS_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    assert config_dir() == tmp_path / "elsewhere" / "radops"


def test_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    store = ExecutorStore(tmp_path / "none-yet")
    assert store.load().executors == {}
    assert [s.name for s in store.list()] == ["local"]
    assert not store.path.exists()


def test_add_creates_a_private_file_in_a_private_folder(tmp_path: Path) -> None:
    store = ExecutorStore(tmp_path / "cfg")
    store.add(ssh("gpu1"))
    assert mode(store.directory) == 0o700
    assert mode(store.path) == 0o600
    assert json.loads(store.path.read_text())["schema_version"] == 1


def test_existing_open_folder_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    ExecutorStore(folder).add(ssh("gpu1"))
    assert mode(folder) == 0o700


def test_add_get_list_remove_round_trip(tmp_path: Path) -> None:
    store = ExecutorStore(tmp_path)
    store.add(ssh("zeta", "z.example"))
    store.add(ssh("alpha", "a.example"))
    reread = ExecutorStore(tmp_path)
    assert reread.get("zeta").ssh.hostname == "z.example"  # type: ignore[union-attr]
    assert [s.name for s in reread.list()] == ["local", "alpha", "zeta"]
    removed = reread.remove("zeta")
    assert removed.name == "zeta"
    assert [s.name for s in ExecutorStore(tmp_path).list()] == ["local", "alpha"]


def test_local_always_exists_and_cannot_be_changed(tmp_path: Path) -> None:
    store = ExecutorStore(tmp_path)
    assert isinstance(store.get("local"), LocalExecutorSpec)
    with pytest.raises(UsageError):
        store.add(LocalExecutorSpec())
    with pytest.raises(UsageError):
        store.remove("local")
    assert not store.path.exists()


def test_duplicate_name_is_refused_unless_replacing(tmp_path: Path) -> None:
    store = ExecutorStore(tmp_path)
    store.add(ssh("gpu1", "first.example"))
    with pytest.raises(UsageError, match="already exists"):
        store.add(ssh("gpu1", "second.example"))
    assert store.get("gpu1").ssh.hostname == "first.example"  # type: ignore[union-attr]
    store.add(ssh("gpu1", "second.example"), replace=True)
    assert store.get("gpu1").ssh.hostname == "second.example"  # type: ignore[union-attr]


def test_unknown_executor_is_not_found(tmp_path: Path) -> None:
    store = ExecutorStore(tmp_path)
    with pytest.raises(NotFoundError):
        store.get("nope")
    with pytest.raises(NotFoundError):
        store.remove("nope")


def test_unparsable_file_is_reported_with_its_path_and_left_alone(tmp_path: Path) -> None:
    store = ExecutorStore(tmp_path)
    garbage = b'{"executors": {"a": \x00 not json'
    store.path.write_bytes(garbage)
    with pytest.raises(ConfigError) as info:
        store.load()
    assert str(store.path) in info.value.message
    with pytest.raises(ConfigError):
        store.add(ssh("gpu1"))
    assert store.path.read_bytes() == garbage


@pytest.mark.parametrize(
    "content",
    [
        '{"executors": {"a": {"kind": "ssh", "name": "a"}}}',  # no hostname
        '{"executors": {"a": {"kind": "teleport", "name": "a"}}}',
        "[1, 2, 3]",
        '{"schema_version": 99}',
    ],
)
def test_invalid_or_newer_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    store = ExecutorStore(tmp_path)
    store.path.write_text(content)
    with pytest.raises(ConfigError) as info:
        store.list()
    assert str(store.path) in info.value.message
    assert info.value.exit_code == 4
    with pytest.raises(ConfigError):
        store.remove("a")
    assert store.path.read_text() == content


def test_unknown_keys_survive_a_write(tmp_path: Path) -> None:
    store = ExecutorStore(tmp_path)
    store.path.write_text(json.dumps({"schema_version": 1, "from_the_future": [1, 2]}))
    store.add(ssh("gpu1"))
    data = json.loads(store.path.read_text())
    assert data["from_the_future"] == [1, 2]
    assert "gpu1" in data["executors"]


def test_concurrent_adds_from_threads_are_all_kept(tmp_path: Path) -> None:
    names = [f"t{i}" for i in range(10)]
    errors: list[BaseException] = []

    def add(name: str) -> None:
        try:
            ExecutorStore(tmp_path).add(ssh(name))
        except BaseException as e:  # surfaced below with the others
            errors.append(e)

    threads = [threading.Thread(target=add, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(ExecutorStore(tmp_path).load().executors) == sorted(names)


def test_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = ExecutorStore(tmp_path)
    for i in range(3):
        store.add(ssh(f"e{i}"))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_edit_that_raises_writes_nothing(tmp_path: Path) -> None:
    store = ExecutorStore(tmp_path)
    store.add(ssh("keep"))
    before = store.path.read_bytes()
    with pytest.raises(RuntimeError), store.edit() as config:
        config.executors.clear()
        raise RuntimeError("changed my mind")
    assert store.path.read_bytes() == before


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ({"kind": "ssh", "name": "g", "hostname": "h", "port": "x"}, "executors.g.port"),
        ({"kind": "slurm", "name": "g", "hostname": "h"}, "executors.g.job_dir"),
        ({"kind": "ssh", "name": "g", "ssh": {"hostname": "h", "port": 0}}, "executors.g.ssh.port"),
    ],
)
def test_an_invalid_value_is_named_by_its_path_in_the_file(
    tmp_path: Path, entry: dict[str, object], where: str
) -> None:
    """Flat in the file (`hostname`, `port` at the entry's top) and so in the error; a nested
    `ssh` written by hand is named as written. Both readings (one executor, the whole file)."""
    (tmp_path / "config.json").write_text(json.dumps({"executors": {"g": entry}}))
    store = ExecutorStore(tmp_path)
    for read in (store.load, lambda: store.open_entry("g")):
        with pytest.raises(ConfigError) as caught:
            read()
        assert f"is invalid at {where}: " in str(caught.value), caught.value
