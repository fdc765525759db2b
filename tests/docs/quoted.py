"""What the docs quote of radops, read from the Markdown: command lines, the errors and hints
it prints, the settings it names (for tests/docs/test_docs_match_the_code.py)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


@dataclass(frozen=True)
class Quote:
    where: str  # docs/usage.md:12
    text: str
    # Typed in a shell or console example (else a mention in the prose or a `text` block: a
    # command's shape, whose arguments may be left out or written as a synopsis).
    typed: bool
    after: str = ""  # the rest of the paragraph's line and the next line, for what it says


SHELLS = {"console", "shell", "sh", "bash"}


def _lines(path: Path) -> Iterator[tuple[int, str, str | None, str]]:
    """(number, line, the fenced block's language or None in prose, the next line), shell
    continuations joined."""
    block: str | None = None
    pending = ""
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            block = (line[3:].strip() or "text") if block is None else None
            continue
        if block in SHELLS and line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        following = lines[number] if number < len(lines) else ""
        yield number, pending + line, block, following
        pending = ""


def commands() -> Iterator[Quote]:
    """Each `radops ...` command line: typed in an example (`$ radops ...` in console output,
    any `radops ...` line in a shell block), or mentioned in the prose."""
    for path in DOCS:
        name = path.relative_to(ROOT)
        for number, line, block, following in _lines(path):
            where = f"{name}:{number}"
            if block is None:
                for found in re.finditer(r"`(radops [^`]*)`", line):
                    after = line[found.end() :] + " " + following
                    yield Quote(where, found[1], typed=False, after=after)
                continue
            if block not in SHELLS:  # `radops executors cp EXECUTOR SRC DEST   what it does`
                if line.startswith("radops "):
                    yield Quote(where, re.split(r"\s{2,}", line)[0], typed=False)
                continue
            typed = line.strip()
            if typed.startswith("$ "):
                typed = typed[2:]
            elif block == "console":
                continue  # output
            typed = re.sub(r"^(\w+=\S*\s+)+", "", typed)  # VAR=value radops ...
            if typed.startswith("radops "):
                yield Quote(where, typed, typed=True)


def messages(prefix: str) -> Iterator[Quote]:
    """Each line radops prints starting with `prefix` (`radops: error: `, `hint: `), as quoted:
    a line of an example's output, or `prefix...` inline in the prose."""
    for path in DOCS:
        name = path.relative_to(ROOT)
        for number, line, block, _ in _lines(path):
            where = f"{name}:{number}"
            if block is not None and line.startswith(prefix):
                yield Quote(where, line[len(prefix) :].strip(), typed=True)
            elif block is None:
                for found in re.finditer(rf"`{re.escape(prefix)}([^`]*)`", line):
                    yield Quote(where, found[1].strip(), typed=False)


@dataclass(frozen=True)
class Template:
    """A string the code writes: its literal parts, `None` for each `{...}` in an f-string."""

    parts: tuple[str | None, ...]

    @property
    def literal(self) -> int:
        return sum(len(part) for part in self.parts if part)

    def pattern(self) -> re.Pattern[str]:
        return re.compile(
            "".join(".+?" if part is None else re.escape(part) for part in self.parts), re.S
        )


def templates() -> list[Template]:
    """Every string literal and f-string in radops' source (a multi-line one also as its first
    line, which is what a quote of its first line shows)."""
    found: list[Template] = []
    for source in sorted((ROOT / "src" / "radops").rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            parts: tuple[str | None, ...]
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                parts = (node.value,)
            elif isinstance(node, ast.JoinedStr):
                parts = tuple(v.value if isinstance(v, ast.Constant) else None for v in node.values)
            else:
                continue
            found.append(Template(parts))
            first: list[str | None] = []
            for part in parts:
                if part is not None and "\n" in part:
                    first.append(part.split("\n", 1)[0])
                    found.append(Template(tuple(first)))
                    break
                first.append(part)
    return found
