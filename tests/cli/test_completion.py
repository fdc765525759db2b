"""Shell completion, as bash asks for it (`_RADOPS_COMPLETE=complete_bash`): executor names from
the config, job ids and names from the real local engine, setting names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.cli_process import radops


def _complete(words: str) -> list[str]:
    cword = len(words.split()) if words.endswith(" ") else len(words.split()) - 1
    result = radops(env={"COMP_WORDS": words, "COMP_CWORD": str(cword),
                         "_RADOPS_COMPLETE": "complete_bash"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # nothing may land in the user's command line but words
    return result.stdout.split()


def test_executor_names_job_ids_names_and_settings(
    tools_context: Path, start_job: Callable[..., str]
) -> None:
    added = radops("executors", "add", "--no-check", "--name", "gpu-box", "--hostname", "h.example")
    assert added.returncode == 0, added.stderr
    assert _complete("radops executors logs ") == ["local", "gpu-box"]
    assert _complete("radops executors logs gp") == ["gpu-box"]
    job_id = start_job(tools_context, "sleep", "60", options=("--name", "completion-test"))
    jobs = _complete("radops executors stop local ")
    assert job_id in jobs and "completion-test" in jobs
    assert _complete(f"radops executors logs local {job_id[:8]}") == [job_id]
    assert _complete("radops executors logs gpu-box ") == []  # unreachable: quietly nothing
    assert _complete("radops config set gcp_z") == ["gcp_zone"]
