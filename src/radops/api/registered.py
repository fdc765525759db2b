"""Registered executors: list, show, add, change, remove, check, and a shell on one.

Every kind is handled alike: a kind's settings are its spec's fields, its questions and what a
check adds to a new executor come from its class (radops.executors.base.Executor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from radops.errors import UsageError

if TYPE_CHECKING:
    from radops.executors.base import Ask
    from radops.executors.model import ConnectOptions, EngineReport
    from radops.progress import ProgressCallback
    from radops.specs import AnyExecutorSpec, ExecutorSpec
    from radops.store import ExecutorStore


def _store(store: ExecutorStore | None) -> ExecutorStore:
    from radops.store import ExecutorStore

    return store or ExecutorStore()


def list_executors(store: ExecutorStore | None = None) -> list[AnyExecutorSpec]:
    """`local` first, then every registered executor by name."""
    return _store(store).list()


def executor_spec(name: str, store: ExecutorStore | None = None) -> AnyExecutorSpec:
    return _store(store).get(name)


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def settings_of(spec_type: type[ExecutorSpec]) -> dict[str, Any]:
    """A kind's settings, as the config file spells them, with their defaults (an entry
    held as a whole, the SSH target, counts field by field)."""
    found: dict[str, Any] = {}
    for name, info in spec_type.model_fields.items():
        held = info.annotation
        if isinstance(held, type) and hasattr(held, "model_fields"):
            found.update({n: i.default for n, i in held.model_fields.items()})
        elif name not in ("kind", "created_at"):
            found[name] = info.default
    return found


def _refuse_foreign(fields: dict[str, Any], spec_type: type[ExecutorSpec], kind: str) -> None:
    foreign = [flag(f) for f in fields if f not in settings_of(spec_type)]
    if foreign:
        raise UsageError(f"{', '.join(foreign)}: not a setting of {kind} executors")


def _validated(spec_type: type[ExecutorSpec], fields: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    try:
        return spec_type.model_validate(fields)
    except ValidationError as e:
        raise UsageError(str(e.errors()[0]["msg"]).removeprefix("Value error, ")) from None


def add_executor(
    kind: str,
    fields: dict[str, Any],
    ask: Ask,
    *,
    check: bool = True,
    connect: ConnectOptions | None = None,
    store: ExecutorStore | None = None,
) -> tuple[AnyExecutorSpec, EngineReport | None]:
    """Register a new executor of `kind` from `fields` (its settings, as given), asking with
    `ask` for what is missing. With `check`, it is saved only once its engine answered, with
    what the check found (platform, a Slurm cluster's runtime). Returns (spec, report)."""
    from radops.api.kinds import executor_class
    from radops.api.session import context_for

    store = _store(store)
    cls = executor_class(kind)
    given = {key for key, value in fields.items() if value is not None}
    fields = {key: value for key, value in fields.items() if value is not None}
    _refuse_foreign(fields, cls.spec_type, kind)
    name = ask(fields.get("name"), "Executor name", "--name", None)
    store.ensure_new_name(name)  # before the other questions: a taken name costs nothing
    fields = cls.ask_fields({**fields, "name": name}, ask)
    spec = _validated(cls.spec_type, {**fields, "kind": kind})
    report = None
    if check:
        context = context_for(spec, store.load().settings, store.known_hosts, connect)
        with cls(spec, context) as executor:
            report = executor.check()
            spec = executor.registered(report, given)
    store.add(spec)
    return spec, report


def update_executor(
    name: str, changes: dict[str, str | None], store: ExecutorStore | None = None
) -> AnyExecutorSpec:
    """Change settings of executor `name`, keeping the rest (and its jobs). Nothing is checked
    on the machine. An empty value clears a setting that may be unset."""
    from radops.api.kinds import executor_class

    store = _store(store)
    changes = {key: value for key, value in changes.items() if value is not None}
    if not changes:
        raise UsageError("nothing to change", "Give --docker-path, --registry, ... (see -h).")
    spec = store.get(name)
    store.check_changeable(name)
    cls = executor_class(spec.kind, name)
    _refuse_foreign(changes, cls.spec_type, spec.kind)
    defaults = settings_of(cls.spec_type)
    for key, value in changes.items():
        if not value and defaults.get(key) is not None:
            raise UsageError(f"{flag(key)} cannot be empty")
    return store.update(name, **{key: value or None for key, value in changes.items()})


def owns_vm(name: str, store: ExecutorStore | None = None) -> bool:
    """Whether executor `name` runs on a VM radops made for it (`remove` may delete it)."""
    from radops.api.kinds import executor_class
    from radops.executors.features import Feature

    spec = _store(store).get(name)
    return Feature.OWN_VM in executor_class(spec.kind, name).features


@dataclass(frozen=True)
class Removal:
    """What `remove_executor` did."""

    spec: AnyExecutorSpec  # the executor as it was
    vm_deleted: bool | None  # its VM deleted (False: already gone); None: not asked to
    left_behind: str | None  # what is left for the user to act on (a VM that still costs)


def remove_executor(
    name: str,
    delete_vm: bool = False,
    progress: ProgressCallback | None = None,
    store: ExecutorStore | None = None,
) -> Removal:
    """Unregister `name`; its jobs keep running on the machine. With `delete_vm`, the VM
    radops made for it is deleted too (a kind without one refuses)."""
    from radops.api.session import open_session

    store = _store(store)
    if delete_vm:
        with open_session(name, store=store) as session:
            spec = store.get(name)  # the model, for the caller (the session's may be plain)
            deleted = session.executor.delete_machine(progress or (lambda line: None))
        return Removal(spec, deleted, None)
    spec = store.remove(name)
    from radops.api.kinds import executor_class

    hint = executor_class(spec.kind, name).left_behind
    return Removal(spec, None, hint.format(name=name) if hint else None)


def check_executor(
    name: str, connect: ConnectOptions | None = None, store: ExecutorStore | None = None
) -> EngineReport:
    """Connect to executor `name` and report its engine (a new platform is recorded)."""
    from radops.api.session import open_session

    with open_session(name, connect, store) as session:
        return session.check()


def shell_command(
    name: str, connect: ConnectOptions | None = None, store: ExecutorStore | None = None
) -> list[str]:
    """The `ssh` command line of an interactive session on executor `name`'s machine, to run
    later (a pinned key is kept in radops' config folder, pinned_hosts/NAME, for it)."""
    from radops.api.session import open_session

    store = _store(store)
    keep = store.directory / "pinned_hosts" / name
    with open_session(name, connect, store) as session, session.shell(keep) as argv:
        return argv


def connect_shell(
    name: str, connect: ConnectOptions | None = None, store: ExecutorStore | None = None
) -> int:
    """An interactive session on executor `name`'s machine, on this terminal; its exit code.
    A pinned key is checked by radops first, then OpenSSH trusts that key alone."""
    from radops.api.session import open_session
    from radops.ssh.openssh import run_foreground

    with open_session(name, connect, store) as session, session.shell() as argv:
        session.close()  # radops' own connection did its check: OpenSSH takes over
        return run_foreground(argv)
