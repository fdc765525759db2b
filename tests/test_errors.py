"""Every error class has the exit code that errors.py's docstring documents."""

from __future__ import annotations

import re

import radops.errors as errors


def documented_exit_codes() -> dict[str, int]:
    doc = errors.__doc__ or ""
    return {m[1]: int(m[2]) for m in re.finditer(r"(\w+Error)\s+exit (\d+)", doc)}


def test_every_error_class_is_documented_with_its_exit_code() -> None:
    documented = documented_exit_codes()
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.RadopsError)
    }
    assert set(documented) == set(classes)
    for name, cls in classes.items():
        assert cls.exit_code == documented[name], name


def test_exit_codes_are_distinct_and_documented_for_interrupts() -> None:
    codes = list(documented_exit_codes().values())
    assert len(codes) == len(set(codes))
    assert {1, 2, 3, 4, 5, 6} <= set(codes)
    assert "130" in (errors.__doc__ or "")


def test_error_keeps_message_and_hint() -> None:
    error = errors.NotFoundError("unknown executor 'x'", "List them.")
    assert (str(error), error.message, error.hint, error.exit_code) == (
        "unknown executor 'x'",
        "unknown executor 'x'",
        "List them.",
        3,
    )
