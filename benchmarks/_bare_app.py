"""Write the start-up baseline, `bare_app.py`: radops' Typer command tree with no logic.

`write_bare_app(directory)` imports `radops.cli.app` in the benchmark's own process and walks its
Typer objects, not only the click tree they build: the root Typer's settings (name, help,
no_args_is_help, pretty_exceptions_enable, context_settings, ...) and registered callback, then
for every Typer its `registered_commands` and `registered_groups`. A group added without a name
(`app.add_typer(jobs_cli.app)`) is added without a name again, so Typer merges its commands into
the parent group as it does for radops. Each command becomes a function of the same signature:
parameter annotations as written (strings, under `from __future__ import annotations`) and
`typer.Option(...)`/`typer.Argument(...)` defaults that pass only the settings differing from a
fresh `typer.Option()`/`typer.Argument()`. Its docstring and the command's name, help and
epilog are kept; its body is empty. A parameter callback, such as the eager `--version`, becomes
a small stand-in of the same signature that only passes the value on (an eager one ends the
command line when given, as `--version` does); a shell-completion function, one that completes
nothing. radops' help presentation (`radops.cli.help_style`, Typer-only code) is copied in and
applied, so both sides render identical help.

The module it writes imports typer and the standard library only, never radops, so what
`python -m bare_app executors --help` costs is what Typer, click and rich cost to build and
render the same help: the baseline radops' start-up is compared with. It is written from the
real tree each time the benchmark runs, so it cannot drift from radops;
`bench_startup.check_shape()` still compares the two click trees, as a guard. What the writer
cannot reproduce without radops' code (a default or setting that is not a literal, a callable
other than a command, parameter or completion callback, a class or annotation name from radops, an
`Annotated` parameter) stops it with an error rather than a different baseline.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import inspect
import keyword
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from typer.models import ArgumentInfo, DefaultPlaceholder, OptionInfo, ParameterInfo
from typer.utils import get_params_from_function

MODULE = "bare_app"
PROG_NAME = "radops"  # what `radops.cli.main()` passes to click, for the same usage lines
LINE_LENGTH = 100
_LITERALS = (type(None), bool, int, float, complex, str, bytes)
# Attributes of a Typer object that are not constructor arguments, and the one renamed.
_TYPER_SKIP = ("info", "registered_groups", "registered_commands", "registered_callback")
_TYPER_RENAMED = {"_add_completion": "add_completion"}
# click's Context and Parameter (vendored by recent Typers), which Typer's own classes extend: a
# parameter callback's arguments so typed get the context and parameter, the other the value.
_CLICK_TYPES: tuple[type, ...] = (typer.Context.__mro__[1], typer.CallbackParam.__mro__[1])


def write_bare_app(directory: Path, prog_name: str = PROG_NAME) -> Path:
    """Write `bare_app.py` from radops' command tree into `directory`; return its path."""
    from radops.cli import app

    path = Path(directory) / f"{MODULE}.py"
    path.write_text(bare_app_source(app, prog_name))
    return path


def bare_app_source(app: typer.Typer, prog_name: str = PROG_NAME) -> str:
    """Python source of a module `app = typer.Typer(...)` with `app`'s tree and no logic."""
    return _Writer(prog_name).module(app)


def _nothing() -> None:
    """A command for the reference objects below."""


def _references() -> dict[str, Any]:
    """What Typer records for calls without arguments: anything else is written out."""
    ref = typer.Typer()
    ref.callback()(_nothing)
    ref.command()(_nothing)
    ref.add_typer(typer.Typer())
    assert ref.registered_callback is not None
    return {
        "typer": ref,
        "info": ref.info,
        "callback": ref.registered_callback,
        "command": ref.registered_commands[0],
        "group": ref.registered_groups[0],
        "option": typer.Option(),
        "argument": typer.Argument(),
    }


def _same(a: Any, b: Any) -> bool:
    """Whether a recorded setting equals the reference one (an unset one is a placeholder)."""
    if isinstance(a, DefaultPlaceholder) or isinstance(b, DefaultPlaceholder):
        return (
            isinstance(a, DefaultPlaceholder)
            and isinstance(b, DefaultPlaceholder)
            and _same(a.value, b.value)
        )
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:
        return a is b


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text)
    return name if name and not name[0].isdigit() else f"_{name}"


def _string(text: str, indent: str) -> str:
    """A docstring literal: triple-quoted and indented when that reads back the same."""
    if "\\" in text or '"""' in text or text.endswith('"') or "\r" in text:
        return repr(text)
    first, *rest = text.split("\n")
    body = first + "".join("\n" + (indent + line if line else "") for line in rest)
    return f'"""{body}\n{indent}"""' if rest else f'"""{body}"""'


class _Writer:
    def __init__(self, prog_name: str) -> None:
        self.prog_name = prog_name
        self.ref = _references()
        self.lines: list[str] = []
        # Every top-level name of the module, with what it is bound to.
        self.names: dict[str, tuple[str, ...]] = {
            "annotations": ("future",),
            "typer": ("import", "typer"),
        }
        self.typers: dict[int, str] = {}
        self.stubs: dict[tuple[int, bool], str] = {}
        self.serial = 0

    # --- the module ---------------------------------------------------------------------

    def module(self, app: typer.Typer) -> str:
        root = self._typer(app, "", "app")
        if root != "app":
            raise ValueError(f"the root app was named {root!r}")
        imports = []
        for name, key in sorted(self.names.items(), key=lambda item: item[1]):
            if key[0] == "import" and key[1] != "typer":
                imports.append(f"import {key[1]}" + ("" if name == key[1] else f" as {name}"))
            elif key[0] == "from":
                alias = "" if name == key[2] else f" as {name}"
                imports.append(f"from {key[1]} import {key[2]}{alias}")
        header = [
            '"""Generated by benchmarks/_bare_app.py from radops.cli.app; do not edit.',
            "",
            "radops' command tree (commands, parameters, help texts, epilogs) with no logic; it",
            "imports nothing from radops. Run: python -m bare_app executors --help",
            '"""',
            "",
            "from __future__ import annotations",
            "",
            *imports,
            *([""] if imports else []),
            "import typer",
        ]
        # radops' help presentation (radops.cli.help_style: typer and typing only), so both
        # sides render the same help with the same work.
        from radops.cli import help_style

        style = inspect.getsource(help_style).split("from typing import Any", 1)[1]
        footer = [
            "", "", "# --- radops.cli.help_style, copied --------------------------------------",
            "from typing import Any  # noqa: E402", style.strip("\n"), "", "", "apply()",
            "", "", 'if __name__ == "__main__":', f"    app(prog_name={self.prog_name!r})",
        ]  # fmt: skip
        return "\n".join([*header, *self.lines, *footer]) + "\n"

    def _typer(self, instance: typer.Typer, prefix: str, hint: str) -> str:
        """Write `instance`, its commands, its sub-apps, its `add_typer` calls; return its name."""
        if id(instance) in self.typers:
            return self.typers[id(instance)]
        args = self._settings(instance, self.ref["typer"], _TYPER_SKIP)
        args += self._settings(instance.info, self.ref["info"], ())
        var = self._unique(hint)
        self.typers[id(instance)] = var
        self._statement(f"{var} = typer.Typer(", args, ")", blank=2)
        if instance.registered_callback is not None:
            info = instance.registered_callback
            if not callable(info.callback):
                raise ValueError(f"the callback of {var} is not a function")
            decorator = self._call(
                f"@{var}.callback(", self._settings(info, self.ref["callback"], ("callback",)), ")"
            )
            self._function(info.callback, prefix, decorator)
        for command in instance.registered_commands:
            if command.callback is None:
                raise ValueError(f"a command of {var} has no callback")
            args = self._settings(command, self.ref["command"], ("callback", "name"))
            # A stand-in's own name differs, so the name Typer would take from it is given.
            name = command.name or typer.main.get_command_name(command.callback.__name__)
            decorator = self._call(f"@{var}.command(", [repr(name), *args], ")")
            self._function(command.callback, prefix, decorator)
        added = []
        for group in instance.registered_groups:
            sub = group.typer_instance
            if not isinstance(sub, typer.Typer):
                raise ValueError(f"a group of {var} has no Typer instance")
            solved = typer.main.solve_typer_info_defaults(group).name
            if solved:
                sub_prefix = f"{prefix}{_identifier(solved)}_"
                sub_hint = f"{sub_prefix}app"
            else:  # merged into this group: named after the module of its first command
                sub_prefix = prefix
                callbacks = [c.callback for c in sub.registered_commands if c.callback]
                module = callbacks[0].__module__.rpartition(".")[2] if callbacks else "merged"
                sub_hint = f"{prefix}{module}_app"
            sub_var = self._typer(sub, sub_prefix, sub_hint)
            added.append([sub_var, *self._settings(group, self.ref["group"], ("typer_instance",))])
        for number, args in enumerate(added):
            self._statement(f"{var}.add_typer(", args, ")", blank=0 if number else 2)
        return var

    def _settings(self, obj: Any, ref: Any, skip: tuple[str, ...]) -> list[str]:
        """`key=value` for each attribute of `obj` that differs from the reference's."""
        args = []
        for attr, value in vars(obj).items():
            if attr in skip or _same(value, getattr(ref, attr)):
                continue
            if attr == "callback" and callable(value):
                text = self._function(value, "_", None)  # Typer(callback=...), add_typer(...)
            else:
                text = self._expr(value, f"{type(obj).__name__}.{attr}")
            args.append(f"{_TYPER_RENAMED.get(attr, attr)}={text}")
        return args

    # --- functions ----------------------------------------------------------------------

    def _function(self, fn: Callable[..., Any], prefix: str, decorator: str | None) -> str:
        """Write a stand-in for a command (or group) callback; return its name."""
        name = self._unique(prefix + fn.__name__)
        signature = inspect.signature(fn)
        params = self._parameters(signature, fn)
        returns = self._returns(signature, fn)
        doc = inspect.getdoc(fn)
        body = _string(doc, "    ") if doc else "..."
        self.lines += ["", ""]
        if decorator:
            self.lines.append(decorator)
        self._statement(f"def {name}(", params, f"){returns}:", blank=0)
        self.lines.append(f"    {body}")
        return name

    def _param_callback(self, fn: Callable[..., Any], eager: bool) -> str:
        """Write a stand-in for a parameter callback: it passes the value on; return its name."""
        key = (id(fn), eager)
        if key in self.stubs:
            return self.stubs[key]
        signature = inspect.signature(fn)
        params = self._parameters(signature, fn)
        # The value is the last parameter not typed as a context or parameter, as for Typer.
        values = [
            name
            for name, meta in get_params_from_function(fn).items()
            if not (isinstance(meta.annotation, type) and issubclass(meta.annotation, _CLICK_TYPES))
        ]
        name = self._unique(fn.__name__)
        self.stubs[key] = name
        self.lines += ["", ""]
        self._statement(f"def {name}(", params, f"){self._returns(signature, fn)}:", blank=0)
        self.lines.append(f'    """Stand-in for {fn.__module__}.{fn.__qualname__}."""')
        if values and eager:
            self.lines += [f"    if {values[-1]}:", "        raise typer.Exit()"]
        self.lines.append(f"    return {values[-1] if values else None}")
        return name

    def _completion_stub(self, fn: Callable[..., Any]) -> str:
        """Write a stand-in for a shell-completion function (same signature, no completions):
        it only runs when a shell asks for completions, never for `--help`."""
        key = (id(fn), "completion")
        if key in self.stubs:
            return self.stubs[key]
        signature = inspect.signature(fn)
        name = self._unique(fn.__name__)
        self.stubs[key] = name
        self.lines += ["", ""]
        params = self._parameters(signature, fn)
        self._statement(f"def {name}(", params, f"){self._returns(signature, fn)}:", blank=0)
        self.lines.append(f'    """Stand-in for {fn.__module__}.{fn.__qualname__}."""')
        self.lines.append("    return []")
        return name

    def _parameters(self, signature: inspect.Signature, fn: Callable[..., Any]) -> list[str]:
        params = []
        previous = None
        for p in signature.parameters.values():
            if previous is inspect.Parameter.POSITIONAL_ONLY and p.kind is not previous:
                params.append("/")
            if p.kind is inspect.Parameter.KEYWORD_ONLY and previous not in (
                inspect.Parameter.KEYWORD_ONLY,
                inspect.Parameter.VAR_POSITIONAL,
            ):
                params.append("*")
            stars = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}
            text = stars.get(p.kind.name, "") + p.name
            if p.annotation is not inspect.Parameter.empty:
                text += ": " + self._annotation(p.annotation, fn)
            if p.default is not inspect.Parameter.empty:
                separator = "=" if p.annotation is inspect.Parameter.empty else " = "
                text += separator + self._default(p.default, f"{fn.__qualname__}({p.name})")
            params.append(text)
            previous = p.kind
        if previous is inspect.Parameter.POSITIONAL_ONLY:
            params.append("/")
        return params

    def _returns(self, signature: inspect.Signature, fn: Callable[..., Any]) -> str:
        if signature.return_annotation is inspect.Signature.empty:
            return ""
        return " -> " + self._annotation(signature.return_annotation, fn)

    def _default(self, value: Any, where: str) -> str:
        if not isinstance(value, ParameterInfo):
            return self._expr(value, where)
        if isinstance(value, OptionInfo):
            kind, ref = "Option", self.ref["option"]
        elif isinstance(value, ArgumentInfo):
            kind, ref = "Argument", self.ref["argument"]
        else:
            raise ValueError(f"{where}: a {type(value).__name__} default is not supported")
        args = [self._expr(value.default, where)]
        if kind == "Option":
            args += [self._expr(decl, where) for decl in value.param_decls or ()]
        for attr, setting in vars(value).items():
            if attr in ("default", "param_decls") or _same(setting, getattr(ref, attr)):
                continue
            if attr == "callback" and callable(setting):
                text = self._param_callback(setting, bool(value.is_eager))
            elif attr == "autocompletion" and callable(setting):
                text = self._completion_stub(setting)
            else:
                text = self._expr(setting, f"{where}.{attr}")
            args.append(f"{attr}={text}")
        return f"typer.{kind}({', '.join(args)})"

    # --- values, names and imports --------------------------------------------------------

    def _expr(self, value: Any, where: str) -> str:
        """Source for a literal value (or a class importable from outside radops)."""
        if value is ...:
            return "..."
        if isinstance(value, _LITERALS):
            text = repr(value)
            try:
                same = ast.literal_eval(text) == value or value != value
            except (ValueError, SyntaxError):
                same = False
            if not same:
                raise ValueError(f"{where}: {value!r} has no literal form")
            return text
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self._expr(item, where) for item in value]
            if isinstance(value, list):
                return f"[{', '.join(items)}]"
            if isinstance(value, tuple):
                return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
            if not items:
                return f"{type(value).__name__}()"
            text = f"{{{', '.join(items)}}}"
            return text if isinstance(value, set) else f"frozenset({text})"
        if isinstance(value, dict):
            pairs = [f"{self._expr(k, where)}: {self._expr(v, where)}" for k, v in value.items()]
            return f"{{{', '.join(pairs)}}}"
        if isinstance(value, type):
            return self._import(value, value.__qualname__, where)
        raise ValueError(f"{where}: cannot write {value!r} without radops' code")

    def _annotation(self, annotation: Any, fn: Callable[..., Any]) -> str:
        """The annotation as written; the names it uses are imported from where they come."""
        where = f"{fn.__module__}.{fn.__qualname__}"
        if typing.get_origin(annotation) is typing.Annotated:
            raise ValueError(f"{where}: Annotated parameters are not supported")
        text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError:
            raise ValueError(f"{where}: cannot write the annotation {text!r}") from None
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                self._annotation_name(node.id, fn, where)
        return text

    def _annotation_name(self, name: str, fn: Callable[..., Any], where: str) -> None:
        namespace = getattr(fn, "__globals__", {})
        if name in namespace:
            obj = namespace[name]
        elif hasattr(builtins, name):
            if name in self.names:
                raise ValueError(f"{where}: the generated module shadows the builtin {name!r}")
            return
        elif name in sys.modules or importlib.util.find_spec(name) is not None:
            obj = importlib.import_module(name)
        else:
            raise ValueError(f"{where}: annotation name {name!r} is not defined at run time")
        if obj is typing.Annotated:
            raise ValueError(f"{where}: Annotated parameters are not supported")
        if isinstance(obj, types.ModuleType):
            self._check_outside_radops(obj.__name__, where)
            self._bind(name, ("import", obj.__name__), where)
        else:
            self._import(obj, name, where)

    def _import(self, obj: Any, name: str, where: str) -> str:
        """Bind `name` to `obj`, imported from its module; return `name`."""
        module_name = getattr(obj, "__module__", None)
        if module_name == "builtins" and getattr(builtins, name, None) is obj:
            return name
        if module_name:
            self._check_outside_radops(module_name, where)
            module = importlib.import_module(module_name)
            for attr in (name, getattr(obj, "__qualname__", "")):
                if attr and "." not in attr and getattr(module, attr, None) is obj:
                    self._bind(name, ("from", module_name, attr), where)
                    return name
        raise ValueError(f"{where}: cannot import {obj!r} by name")

    @staticmethod
    def _check_outside_radops(module_name: str, where: str) -> None:
        if module_name.split(".")[0] == "radops":
            raise ValueError(f"{where}: uses {module_name}, which the bare app must not import")

    def _bind(self, name: str, key: tuple[str, ...], where: str) -> None:
        if self.names.setdefault(name, key) != key:
            raise ValueError(f"{where}: name {name!r} is used for two things")

    def _unique(self, hint: str) -> str:
        base = _identifier(hint)
        name = base
        number = 1
        while name in self.names or keyword.iskeyword(name) or hasattr(builtins, name):
            number += 1
            name = f"{base}_{number}"
        self.serial += 1
        self.names[name] = ("def", str(self.serial))
        return name

    # --- layout -------------------------------------------------------------------------

    def _call(self, opening: str, args: list[str], closing: str) -> str:
        """`opening` args `closing` on one line, or one argument a line when too long."""
        line = opening + ", ".join(args) + closing
        if len(line) <= LINE_LENGTH or not args:
            return line
        return "\n".join([opening, *(f"    {arg}," for arg in args), closing])

    def _statement(self, opening: str, args: list[str], closing: str, blank: int) -> None:
        self.lines += [""] * blank
        self.lines.append(self._call(opening, args, closing))
