"""How a job command resolves the job it names, end to end on the local engine: a whole id, then a
--name, then an id prefix (docker's order), and `run` refusing a name a job id starts with.

One job of each colliding pair is started on the engine by hand, with the labels radops writes:
`run` picks random ids, and (now) refuses the names that would collide.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from radops.executors.docker.labels import job_labels
from radops.executors.model import LABEL_NAME, JobRequest
from tests.cli_process import describe, radops
from tests.conftest import BASE_IMAGE


def plant(client: Any, job_ids: list[str], job_id: str, name: str, script: str) -> None:
    """A running job as radops would have started it: its container and labels (the name set
    apart: radops before this check let any name through)."""
    request = JobRequest(context=Path("."), command=["sh", "-c", script])
    labels = {**job_labels(job_id, "local", BASE_IMAGE, request), LABEL_NAME: name}
    client.containers.run(
        BASE_IMAGE, ["sh", "-c", script], name=f"radops-{job_id}", labels=labels, detach=True
    )
    job_ids.append(job_id)


def inspected(ref: str) -> dict[str, Any]:
    result = radops("executors", "inspect", "local", ref, "--json")
    assert result.returncode == 0, describe(result)
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def one_line_refusal(result: Any, text: str) -> None:
    assert result.returncode == 2, describe(result)
    assert text in result.stderr and "Traceback" not in result.stderr, describe(result)
    assert len(result.stderr.strip().splitlines()) <= 2, describe(result)  # error, then hint


def test_rm_of_a_name_removes_the_named_job_never_the_one_whose_id_starts_with_it(
    docker_client: Any, tools_context: Path, start_job: Any, job_ids: list[str]
) -> None:
    prefix = secrets.token_hex(3)
    named = start_job(
        tools_context, "sh", "-c", "echo named; sleep 300", options=("--name", prefix)
    )
    # Then a job whose id happens to start with that name (6 hex digits: one in 16 million).
    important = prefix + secrets.token_hex(3)
    plant(docker_client, job_ids, important, "important-training", "echo important; sleep 300")

    assert inspected(prefix)["job_id"] == named  # the name beats the id prefix
    assert inspected(important[:8])["job_id"] == important  # a longer prefix is no name
    assert inspected("important-training")["job_id"] == important

    # A new job may not take the name now: `prefix` would stop meaning what it means.
    again = radops("executors", "run", "local", str(tools_context), "--name", prefix, "true")
    one_line_refusal(again, f"--name '{prefix}' is the start of the id of job {important} on")
    listed = json.loads(radops("executors", "jobs", "local", "--json").stdout)
    assert [job["job_id"] for job in listed if job["name"] == prefix] == [named]

    removed = radops("executors", "rm", "local", prefix, "--force")
    assert removed.returncode == 0, describe(removed)
    assert f"Removed job {named}" in removed.stderr
    kept = docker_client.api.inspect_container(f"radops-{important}")
    assert kept["State"]["Running"]
    logs = radops("executors", "logs", "local", important)
    assert logs.returncode == 0 and logs.stdout == "important\n", describe(logs)


def test_a_whole_id_beats_a_job_named_like_it(
    docker_client: Any, tools_context: Path, start_job: Any, job_ids: list[str]
) -> None:
    first = start_job(tools_context, "sleep", "300")
    # A job an older radops let take the other's id as its name.
    legacy = secrets.token_hex(6)
    plant(docker_client, job_ids, legacy, first, "sleep 300")
    assert inspected(first)["job_id"] == first
    removed = radops("executors", "rm", "local", first, "--force")
    assert removed.returncode == 0 and f"Removed job {first}" in removed.stderr, describe(removed)
    assert inspected(first)["job_id"] == legacy  # no job has that id now: the name counts

    shaped = radops("executors", "run", "local", str(tools_context), "--name", legacy, "true")
    one_line_refusal(shaped, f"invalid --name '{legacy}': it has the shape of a job id")
