"""`main` builds only the branch of the command tree that the arguments name (Typer makes every
command's click command on every run). Every command must come out the same either way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer

from radops.cli import _tree_for, app


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name, sub in subcommands.items():
        yield from _leaves(sub, (*path, name))


def _shape(command: Any) -> list[tuple[Any, ...]]:
    return [
        (p.name, tuple(p.opts), tuple(p.secondary_opts), p.required, p.multiple, p.nargs)
        for p in command.params
    ]


FULL = dict(_leaves(typer.main.get_command(app)))


@pytest.mark.parametrize("path", sorted(FULL), ids=" ".join)
def test_each_command_is_the_same_from_its_own_branch(path: tuple[str, ...]) -> None:
    tree = typer.main.get_command(_tree_for([*path, "some-argument", "--an-option"]))
    leaves = dict(_leaves(tree))
    assert list(leaves) == [path]  # nothing else was built
    assert _shape(leaves[path]) == _shape(FULL[path])
    assert leaves[path].help == FULL[path].help


@pytest.mark.parametrize(
    "args",
    [[], ["--help"], ["executors"], ["executors", "--help"], ["executors", "jbos"], ["nope"],
     ["executors", "gcp"], ["executors", "gcp", "nope", "x"]],
)  # fmt: skip
def test_a_path_that_names_no_command_keeps_what_help_and_suggestions_need(
    args: list[str],
) -> None:
    tree = dict(_leaves(typer.main.get_command(_tree_for(args))))
    depth = 2 if args[:2] == ["executors", "gcp"] else (1 if args[:1] == ["executors"] else 0)
    expected = {p for p in FULL if list(p[:depth]) == args[:depth]}
    assert set(tree) == expected
