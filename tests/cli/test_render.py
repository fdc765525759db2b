"""Rendering helpers: ages, command text, help examples, raw log output."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from radops.cli.render import (
    age,
    command_text,
    examples,
    print_error,
    print_fields,
    print_line,
    print_notice,
    write_output,
)
from radops.errors import NotFoundError

NOW = datetime(2026, 1, 2, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (45, "45s"),
        (59, "59s"),
        (60, "1m"),
        (12 * 60 + 59, "12m"),
        (3 * 3600 + 5, "3h"),
        (86399, "23h"),
        (2 * 86400 + 7, "2d"),
        (-30, "0s"),  # a clock slightly ahead of ours
    ],
)
def test_age(seconds: int, expected: str) -> None:
    assert age(NOW - timedelta(seconds=seconds), NOW) == expected


def test_age_unknown() -> None:
    assert age(None, NOW) == "?"


def test_command_text_quotes_like_a_shell() -> None:
    assert command_text(["python", "-c", "print('a b')"]) == "python -c 'print('\"'\"'a b'\"'\"')'"
    assert command_text([]) == "(image default)"


def test_examples_keep_brackets_literal() -> None:
    text = examples("radops a [x]", "radops b")
    assert text.startswith("[b]Examples[/b]")
    assert "radops a \\[x]" in text and "radops b" in text


def test_print_error_is_one_line_plus_hint(capsys: pytest.CaptureFixture[str]) -> None:
    print_error(NotFoundError("unknown executor 'x'", "List them."))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "radops: error: unknown executor 'x'\nhint: List them.\n"


def test_write_output_sends_raw_bytes_to_each_stream(
    capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    write_output(iter([("stdout", b"[red]a\xff"), ("stderr", b"e\n"), ("stdout", b"b")]))
    captured = capfdbinary.readouterr()
    assert captured.out == b"[red]a\xffb"
    assert captured.err == b"e\n"


def test_every_printer_escapes_remote_text_once(capsys: pytest.CaptureFixture[str]) -> None:
    evil = "v1\x1b]0;pwned\x07\x1b[31m"
    shown = "v1\\x1b]0;pwned\\x07\\x1b[31m"
    print_line(f"Docker {evil}\nsecond line\t{evil}")  # radops' line breaks stay
    print_notice(f"Job is {evil}\nforged line")  # a notice stays one line
    print_fields([("status", f"{evil}\nforged: field")])
    print_error(f"no such job {evil}\n", f"hint {evil}\nsecond")
    captured = capsys.readouterr()
    assert captured.out == (
        f"Docker {shown}\nsecond line\\t{shown}\nstatus: {shown}\\nforged: field\n"
    )
    assert captured.err == (
        f"Job is {shown}\\nforged line\n"
        f"radops: error: no such job {shown}\\n\nhint: hint {shown}\nsecond\n"
    )
    print_line(shown)  # already-escaped text is not escaped again
    assert capsys.readouterr().out == shown + "\n"
