"""How `--help` names parameters: as docker's and git's help do, not as Typer 0.29 does by default.

Typer prints a type label after every option (`--follow <bool>`) and braces around required
arguments in the usage line (`run [OPTIONS] {executor} {path}`). A flag takes no value, so it
gets no label; a required argument is its plain name (`run [OPTIONS] EXECUTOR PATH [COMMAND]...`).
Applied once, when the command tree is imported; if Typer's help classes change, help keeps
Typer's own look (nothing else depends on this).
"""

from __future__ import annotations

from typing import Any


def apply() -> None:
    from typer import core

    option = getattr(core, "TyperOption", None)
    argument = getattr(core, "TyperArgument", None)
    if option is None or argument is None:
        return
    typer_display_type_rich = option.display_type_rich

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        result: str | None = typer_display_type_rich(self, ctx)
        return result

    def usage_display_name(self: Any) -> str:
        name = str(self.display_name_raw)
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    option.display_type_rich = display_type_rich
    if hasattr(argument, "_usage_display_name"):
        argument._usage_display_name = usage_display_name
