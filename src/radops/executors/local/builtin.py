"""The local executor's spec, made on first use.

`LocalExecutorSpec` is a pydantic model like every spec (~40 ms to import), yet a local `jobs`,
`logs` or `stop` never reads it: the built-in executor has no settings. `open_session("local")`
opens a `LocalExecutor` without one; the spec is made when something asks for it (`show`,
`check`), and `LocalExecutor.spec_type` imports its class when asked (base.SpecType).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radops.names import LOCAL_EXECUTOR_NAME

if TYPE_CHECKING:
    from radops.specs import LocalExecutorSpec


class Builtin:
    """What stands for the spec until it is made: the built-in's name and kind."""

    name = LOCAL_EXECUTOR_NAME
    kind = "local"


class LazySpec:
    """A mix-in for LocalExecutor: `spec` is a `LocalExecutorSpec`, made on first read when
    the executor was opened with `Builtin()`."""

    _spec: Any

    @property
    def spec(self) -> LocalExecutorSpec:
        if isinstance(self._spec, Builtin):
            from radops.specs import LocalExecutorSpec

            self._spec = LocalExecutorSpec()
        spec: LocalExecutorSpec = self._spec
        return spec

    @spec.setter
    def spec(self, value: Any) -> None:
        self._spec = value
