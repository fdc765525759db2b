"""The docs cannot drift from the code: every `radops ...` command they show parses with the
real command tree, every error and hint they quote is one the code writes, and every list of
settings names exactly the settings there are. (Fast: no engine, nothing runs.)"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from functools import cache
from typing import Any

import pytest
import typer

from radops.cli import app
from radops.plainconfig import setting_names
from tests.docs.quoted import ROOT, Quote, Template, commands, messages, templates

# Shell words that end radops' own argv.
_SHELL = {"|", "||", "&&", ";", "&", ">", ">>", "2>", "2>&1", "<"}
# Prose that shows a command's shape, not a command: `radops executors prune EXECUTOR [--until
# 7d]`, `run | logs | jobs`, `gcp ...`, `<your org>`.
_SYNOPSIS = re.compile(r"^(\[.*|.*\|.*|\.\.\.|…|<.*)$")


def _argv(text: str) -> list[str]:
    text = re.sub(r"<[^<>]*>", "PLACEHOLDER", text)  # ghcr.io/<your GitHub user or org>
    words = shlex.split(text, comments=True)
    for i, word in enumerate(words):
        if word in _SHELL:
            return words[1:i]
    return words[1:]


def _parse(argv: list[str], whole: bool) -> str | None:
    """None if the real command tree takes `argv`, else click's complaint. Not `whole` (a
    mention in the prose): the command and its options must exist; arguments may be left out."""
    if not whole:
        argv = [*argv, "--help"]
    command: Any = typer.main.get_command(app)
    name, ctx = "radops", None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            while True:
                ctx = command.make_context(name, argv, parent=ctx)
                if not hasattr(command, "resolve_command"):
                    return None
                rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
                if not rest:
                    return None
                name, command, argv = command.resolve_command(ctx, rest)
    except typer.Exit:  # --help, --version: taken
        return None
    except typer.TyperException as e:
        return f"{type(e).__name__}: {getattr(e, 'format_message', e.__str__)()}"


def _command_cases() -> list[Quote]:
    return list(commands())


@pytest.mark.parametrize("quote", _command_cases(), ids=lambda q: q.where)
def test_each_command_in_the_docs_parses(quote: Quote) -> None:
    argv = _argv(quote.text) if quote.typed else _argv(re.sub(r"\S*\|\S*.*", "", quote.text))
    cut = next((i for i, word in enumerate(argv) if _SYNOPSIS.match(word)), None)
    whole = quote.typed and cut is None
    problem = _parse(argv[:cut], whole)
    failing = re.search(r"fails with\s+`Error: ([^`]*)`", quote.after)
    if failing:  # the docs show it failing: with that error
        assert problem is not None and failing[1] in problem, (quote, problem)
        return
    assert problem is None, f"{quote.where}: `{quote.text}`: {problem}"


def test_the_docs_show_commands_enough_to_check() -> None:
    quotes = _command_cases()
    assert len([q for q in quotes if q.typed]) > 150, len(quotes)


@cache
def _templates() -> list[tuple[re.Pattern[str], int]]:
    return [(t.pattern(), t.literal) for t in templates()]


# At least this much of a quoted message must be the code's own words (the rest: values).
_OWN_WORDS = 10


def _written(message: str) -> bool:
    """Whether the code writes `message`: a string of the source matches it whole, with enough
    words of its own; or its start does and the rest, after `: `, is a machine's (docker's, a
    cloud's) text that radops passes on after saying which step failed."""
    message = message.replace("…", "...")
    if message.endswith("...") and len(message) > 12:  # `internal error: ...`: its start
        return _begins(message[:-3])
    enough = min(_OWN_WORDS, len(message))
    if any(p.fullmatch(message) and lit >= enough for p, lit in _templates()):
        return True
    for found in re.finditer(": ", message):
        start = message[: found.start()]
        if any(p.fullmatch(start) and lit >= min(12, len(start)) for p, lit in _templates()):
            return True
    return False


def _begins(start: str) -> bool:
    """Whether some string of the code begins with `start` (its first parts match it)."""
    for template in templates():
        parts = template.parts
        for k in range(1, len(parts) + 1):
            head = Template(parts[:k])
            if head.literal >= 12 and head.pattern().fullmatch(start):
                return True
    return False


@pytest.mark.parametrize("prefix", ["radops: error: ", "hint: "])
def test_each_error_and_hint_the_docs_quote_is_the_codes(prefix: str) -> None:
    quotes = list(messages(prefix))
    assert len(quotes) > 20, quotes  # the reader found them
    drifted = [f"{q.where}: {prefix}{q.text}" for q in quotes if not _written(q.text)]
    assert drifted == [], "\n".join(drifted)


def test_a_changed_message_is_caught() -> None:
    # The check itself: the real message passes, the same with a word changed does not.
    assert _written("job id '0' matches 2 jobs on 'local'")
    assert not _written("job id '0' is ambiguous: 2 jobs on 'local'")
    assert not _written(
        "the template has GPUs (nvidia-tesla-a100 x 1) but nvidia-smi sees none on the VM"
    )


def test_the_settings_the_docs_list_are_the_settings() -> None:
    names = setting_names()
    usage = (ROOT / "docs" / "usage.md").read_text()
    row = next(line for line in usage.splitlines() if line.startswith("| `config set KEY VALUE`"))
    assert re.findall(r"`([a-z_]+)`", row.split("|")[2]) == names, row
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in names if f"`{name}`" not in configuration]
    assert missing == [], f"docs/configuration.md says nothing of {missing}"
    # Every `config set KEY` the docs show names a real setting (or shows the error for one
    # that is not).
    for quote in commands():
        argv = _argv(quote.text)
        if argv[:2] in (["config", "set"], ["config", "unset"]) and len(argv) > 2:
            for key in argv[2].split("|"):  # `config set gcp_project|gcp_zone ...`
                assert key in names or key == "colour", f"{quote.where}: {quote.text}"
    # The hint for an unknown one lists them all.
    for quote in messages("hint: "):
        if quote.text.startswith("Settings: "):
            assert quote.text == f"Settings: {', '.join(names)}.", quote.where


def test_templates_see_f_strings_and_first_lines() -> None:
    found = {t.parts for t in templates()}
    assert ("unknown setting ", None) in found
    assert Template(("Last build output:",)).parts in found


def test_the_examples_that_need_no_engine_are_what_a_real_run_prints() -> None:
    # `scripts/docs_examples.py` reruns them (config commands) in a fresh home; engine examples
    # it regenerates on demand (their ids and hashes differ each run).
    import subprocess
    import sys

    script = ROOT / "scripts" / "docs_examples.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
