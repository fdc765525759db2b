"""The config store: one JSON file, locked for each change, replaced atomically, 0600 in 0700."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from radops.errors import ConfigError, NotFoundError, UsageError
from radops.names import LOCAL_EXECUTOR_NAME

# The config's models are pydantic's (~40 ms to import): loaded by the methods that read or
# write the file, so a command on the built-in `local` executor, which has no settings, does
# not pay for them.
if TYPE_CHECKING:
    from radops.config import ConfigFile, Settings
    from radops.specs import AnyExecutorSpec

CONFIG_FILE_NAME = "config.json"
LOCK_TIMEOUT_S = 30


def config_dir() -> Path:
    """RADOPS_CONFIG_DIR, else the user config folder for radops (XDG_CONFIG_HOME on Linux)."""
    override = os.environ.get("RADOPS_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("radops", appauthor=False))


class ExecutorStore:
    """Executor definitions and settings. Reads see a whole file; writes hold a file lock."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.path = self.directory / CONFIG_FILE_NAME

    def check_owner(self) -> None:
        """Refuse a config folder that belongs to another user: its settings (registry, SSH
        options) and known_hosts decide what radops trusts."""
        try:
            owner = self.directory.stat().st_uid
        except FileNotFoundError:
            return
        except OSError as e:
            raise ConfigError(f"cannot read config folder {self.directory}: {e.strerror}") from e
        if owner != os.getuid():
            raise ConfigError(
                f"config folder {self.directory} belongs to another user (uid {owner})",
                "Use your own (unset RADOPS_CONFIG_DIR / XDG_CONFIG_HOME kept from another "
                "user, e.g. by `sudo -E`), or give the folder to yourself.",
            )

    def load(self) -> ConfigFile:
        """The config as it is on disk; an empty one if there is no file yet."""
        from radops.config import ConfigFile

        text = self._read()
        return ConfigFile() if text is None else self._parse(text)

    def _read(self) -> str | None:
        """The config file's text; None if there is no file yet."""
        self.check_owner()
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigError(f"cannot read config file {self.path}: {e.strerror}") from e

    def open_entry(self, name: str) -> tuple[AnyExecutorSpec, Settings]:
        """Registered executor `name` and the settings, for a command that uses only them:
        read without pydantic when the whole file allows it (radops.plainconfig: the same
        values, ~80 ms sooner), else as `load` and `spec_in` read them, with their errors."""
        from radops import plainconfig

        text = self._read()
        plain = None if text is None else plainconfig.read(text)
        spec = None if plain is None else plain.spec(name)
        if plain is not None and spec is not None:
            # They stand for the models: every field with the model's value; anything else
            # of the spec's is asked of its model, made on first use.
            return cast("AnyExecutorSpec", spec), cast("Settings", plain.settings)
        from radops.config import ConfigFile

        config = ConfigFile() if text is None else self._parse(text)  # the same text, once
        return self.spec_in(config, name), config.settings

    def _parse(self, text: str) -> ConfigFile:
        from pydantic import ValidationError

        from radops.config import ConfigFile
        from radops.plainconfig import SCHEMA_VERSION

        hint = "Fix the file or move it away; radops will not overwrite it."
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {self.path} is not valid JSON ({e})", hint) from e
        version = raw.get("schema_version") if isinstance(raw, dict) else None
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise ConfigError(
                f"config file {self.path} has schema version {version}; "
                f"this radops understands up to {SCHEMA_VERSION}",
                "Upgrade radops.",
            )
        try:
            return ConfigFile.model_validate(raw)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in _path_in_file(first["loc"], raw))
            raise ConfigError(
                f"config file {self.path} is invalid at {where}: {first['msg']}", hint
            ) from e

    @contextlib.contextmanager
    def edit(self) -> Iterator[ConfigFile]:
        """Lock, load, let the caller change the config, then write it back atomically."""
        from filelock import FileLock, Timeout

        self._ensure_directory()
        lock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT_S, mode=0o600)
        try:
            with lock:
                config = self.load()
                yield config
                self._write(config)
        except Timeout as e:
            raise ConfigError(
                f"config file {self.path} stayed locked for {LOCK_TIMEOUT_S}s",
                "Another radops command is changing it; try again.",
            ) from e
        except OSError as e:  # the lock file cannot be made: another owner, read-only folder
            raise ConfigError(
                f"cannot lock config file {self.path}: {e.strerror or e}",
                f"Check that you own {self.directory}.",
            ) from e

    def _ensure_directory(self) -> None:
        self.check_owner()
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.directory.stat().st_mode & 0o077:
                self.directory.chmod(0o700)
        except OSError as e:
            raise ConfigError(f"cannot create config folder {self.directory}: {e.strerror}") from e

    def _write(self, config: ConfigFile) -> None:
        import tempfile

        data = config.model_dump_json(indent=2, exclude_none=True) + "\n"
        # mkstemp creates the file 0600; os.replace makes the new file appear whole or not at all.
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".config.", suffix=".tmp")
        except OSError as e:
            raise ConfigError(
                f"cannot write in config folder {self.directory}: {e.strerror}"
            ) from e
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise ConfigError(f"cannot write config file {self.path}: {e.strerror}") from e

    # Executors -----------------------------------------------------------------------------

    @property
    def known_hosts(self) -> Path:
        """radops' own known-hosts file: host keys trusted beside ~/.ssh/known_hosts."""
        return self.directory / "known_hosts"

    def get(self, name: str) -> AnyExecutorSpec:
        """The executor called `name`; `local` always exists."""
        return self.spec_in(self.load(), name)

    def spec_in(self, config: ConfigFile, name: str) -> AnyExecutorSpec:
        """The executor called `name` in `config` (as `load` returned it)."""
        from radops.specs import LocalExecutorSpec

        if name == LOCAL_EXECUTOR_NAME:
            return LocalExecutorSpec()
        spec = config.executors.get(name)
        if spec is None:
            raise NotFoundError(
                f"unknown executor {name!r}", "List executors with `radops executors list`."
            )
        return spec

    def list(self) -> list[AnyExecutorSpec]:
        """`local` first, then every registered executor by name."""
        from radops.specs import LocalExecutorSpec

        executors = self.load().executors
        return [LocalExecutorSpec(), *(executors[n] for n in sorted(executors))]

    def ensure_new_name(self, name: str) -> None:
        """Raise UsageError unless `name` is valid and free for a new executor."""
        self._check_new(name, self.load().executors)

    def _check_new(self, name: str, executors: dict[str, Any]) -> None:
        from radops.rules import validate_executor_name

        validate_executor_name(name)
        if name == LOCAL_EXECUTOR_NAME:
            raise UsageError("'local' is built in: it cannot be added, replaced or removed")
        if name in executors:
            raise UsageError(
                f"executor {name!r} already exists",
                f"Remove it first with `radops executors remove {name}`, or choose another name.",
            )

    def add(self, spec: AnyExecutorSpec, replace: bool = False) -> None:
        """Register `spec`; an existing name is an error unless `replace`."""
        from radops.specs import LocalExecutorSpec

        if isinstance(spec, LocalExecutorSpec):
            raise UsageError("'local' is built in: it cannot be added, replaced or removed")
        with self.edit() as config:
            self._check_new(spec.name, {} if replace else config.executors)
            config.executors[spec.name] = spec

    def update(self, name: str, **changes: Any) -> AnyExecutorSpec:
        """Change fields of registered executor `name` (checked as `add` checks them); its
        other settings, and its jobs, stay. A value of None clears an optional field."""
        from pydantic import ValidationError

        self.check_changeable(name)
        with self.edit() as config:
            spec = config.executors.get(name)
            if spec is None:
                raise NotFoundError(
                    f"unknown executor {name!r}", "List executors with `radops executors list`."
                )
            try:
                changed = type(spec).model_validate({**spec.model_dump(), **changes})
            except ValidationError as e:
                message = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
                raise UsageError(message) from None
            config.executors[name] = changed
        return changed

    def check_changeable(self, name: str) -> None:
        """Refuse to change the built-in `local`: it has no settings."""
        if name == LOCAL_EXECUTOR_NAME:
            raise UsageError("'local' is built in: it has no settings to change")

    def update_platform(self, name: str, platform: str) -> None:
        """Record the platform an executor's engine reported (images are built for it)."""
        with self.edit() as config:
            spec = config.executors.get(name)
            if spec is not None:
                spec.platform = platform

    def remove(self, name: str) -> AnyExecutorSpec:
        """Unregister `name` and return what it was."""
        if name == LOCAL_EXECUTOR_NAME:
            raise UsageError("'local' is built in: it cannot be removed")
        with self.edit() as config:
            spec = config.executors.pop(name, None)
            if spec is None:
                raise NotFoundError(f"unknown executor {name!r}")
            return spec


def _path_in_file(loc: tuple[int | str, ...], raw: Any) -> list[int | str]:
    """Where pydantic found an error, as the path in the file: an executor's kind (the tag
    pydantic picks its model by) is not in it, nor its `ssh` target unless the file has one
    (it is written flat: `hostname`, `port`, ... at the entry's top level)."""
    parts = list(loc)
    if len(parts) > 2 and parts[0] == "executors":
        del parts[2]
        entry = raw["executors"].get(parts[1])  # a dict: pydantic reached into its entries
        nested = isinstance(entry, dict) and "ssh" in entry
        if len(parts) > 2 and parts[2] == "ssh" and not nested:
            del parts[2]
    return parts
