"""Typer's value coercion without pydantic for the values that need none.

Typer 0.29 converts every parameter's value with a pydantic `TypeAdapter`, built the first time
the parameter is processed, even when the option was not given: importing pydantic for it is
about 60 ms of every command (a quarter of `radops executors jobs local`). Most of radops'
parameters are `str`, `bool` or `list[str]`, and the command line gives strings: converting a
string to `str` is the identity. Here the parameter's adapter is built only when a value is not
one of those cases (`--tail abc`, a float, a Path), so typer's own conversion and messages
decide everything but the identities below, which give the same results as the adapter:

- a `str` parameter given a `str`: that string;
- a `list[str]` parameter given strings: their list;
- an `int` parameter given an int (its default) or ASCII digits, within its min/max: that int;
- a `Path` parameter given a string: `Path(value)`, then Typer's own path checks.

Applied once, when the command tree is imported (like help_style); if Typer's internals change,
coercion stays Typer's own (nothing else depends on this).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def apply() -> None:
    from typer import _coercion, _param_types, core
    from typer._click.exceptions import BadParameter

    base = getattr(_coercion, "RuntimeParam", None)
    found = getattr(core, "build_runtime_param", None)
    if base is None or found is None or getattr(found, "_radops_lazy", False):
        return
    build: Callable[[Any], Any] = found
    coerce_cli_path = getattr(_param_types, "coerce_cli_path", None)

    @dataclass(frozen=True)
    class LazyRuntimeParam(base):  # type: ignore[misc,valid-type]
        """Identity conversions here; anything else through Typer's own (built on first use)."""

        descriptor: Any = None
        built: list[Any] = field(default_factory=list)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            same = identity(self.descriptor, value)
            if same is not _NO:
                return same
            if coerce_cli_path is not None and plain_path(self.descriptor, value):
                # Typer's own checks on the Path the adapter would make; if one fails, the
                # adapter runs after all so that its message names the value as given.
                with contextlib.suppress(BadParameter):
                    return coerce_cli_path(
                        Path(value), self.parameter_info, path_type=Path, param=param, ctx=ctx
                    )
            if not self.built:
                self.built.append(build(self.descriptor))
            return self.built[0]._coerce_value(value, param=param, ctx=ctx)

    def lazy_build(descriptor: Any) -> Any:
        if descriptor.file_annotation is not None or descriptor.parameter_info.parser is not None:
            return build(descriptor)
        return LazyRuntimeParam(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            descriptor=descriptor,
        )

    lazy_build._radops_lazy = True  # type: ignore[attr-defined]
    setattr(core, "build_runtime_param", lazy_build)  # noqa: B010 (typer does not export it)


_NO = object()  # "no identity: let Typer's adapter convert it"


def plain_path(descriptor: Any, value: Any) -> bool:
    """A string for a `Path` parameter: the adapter makes it `Path(value)`, then Typer checks it."""
    info = descriptor.parameter_info
    return (
        descriptor.annotation is Path
        and getattr(info, "path_type", None) is None
        and getattr(info, "parser", None) is None
        and type(value) is str
    )


def identity(descriptor: Any, value: Any) -> Any:
    """`value` as Typer's adapter would return it, when that is the value itself; else _NO."""
    annotation = descriptor.annotation
    info = descriptor.parameter_info
    if getattr(info, "click_type", None) is not None or descriptor.is_choice:
        return _NO
    if annotation is str:
        return value if type(value) is str else _NO
    if annotation == list[str]:
        if isinstance(value, (list, tuple)) and all(type(v) is str for v in value):
            return list(value)
        return _NO
    if annotation is int and not getattr(info, "clamp", False):
        if type(value) is str and value.isascii() and value.isdigit():
            value = int(value)
        if type(value) is not int:
            return _NO
        low, high = info.min, info.max
        if (low is not None and value < low) or (high is not None and value > high):
            return _NO  # the adapter's error message
        return value
    return _NO
