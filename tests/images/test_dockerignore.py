"""`<Dockerfile>.dockerignore` beside the Dockerfile takes precedence over `.dockerignore`, as
with BuildKit: what it excludes is neither hashed nor sent to the engine, so it is not in the
image (a `secret.env` must not go to the registry). Real local engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from radops.images.context import context_files, dockerignore_file
from tests.cli_process import describe, radops

FILES: dict[str, str | bytes] = {
    "prod.Dockerfile": 'FROM busybox:1.36\nCOPY . /ctx\nCMD ["ls", "-A", "/ctx"]\n',
    "prod.Dockerfile.dockerignore": "secret.env\n",
    ".dockerignore": "other.txt\n",
    "secret.env": "TOKEN=do-not-ship\n",
    "other.txt": "only .dockerignore excludes me\n",
    "app.py": "print('hi')\n",
}


def test_the_dockerfile_specific_ignore_file_wins(make_context: Callable[..., Path]) -> None:
    context = make_context("ignore-specific", FILES)
    assert dockerignore_file(context, "prod.Dockerfile") == context / "prod.Dockerfile.dockerignore"
    assert dockerignore_file(context, "Dockerfile") == context / ".dockerignore"
    sent = context_files(context, "prod.Dockerfile")
    assert "secret.env" not in sent
    assert "other.txt" in sent and "app.py" in sent


def test_what_it_excludes_is_not_in_the_image(
    make_context: Callable[..., Path],
    start_job: Callable[..., str],
    wait_job: Callable[[str], int],
) -> None:
    context = make_context("ignore-image", FILES)
    job_id = start_job(context, "ls", "-A", "/ctx", options=("--file", "prod.Dockerfile"))
    assert wait_job(job_id) == 0
    logs = radops("executors", "logs", "local", job_id)
    assert logs.returncode == 0, describe(logs)
    listed = set(logs.stdout.split())
    assert "secret.env" not in listed
    assert {"other.txt", "app.py", "prod.Dockerfile"} <= listed


def test_an_edit_to_an_excluded_file_keeps_the_tag(make_context: Callable[..., Path]) -> None:
    from radops.images.context import tag_for_context

    context = make_context("ignore-tag", FILES)
    before = tag_for_context(context, "prod.Dockerfile")
    (context / "secret.env").write_text("TOKEN=rotated\n")
    assert tag_for_context(context, "prod.Dockerfile") == before
    (context / "other.txt").write_text("changed\n")
    assert tag_for_context(context, "prod.Dockerfile") != before
