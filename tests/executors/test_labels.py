"""What radops writes on a job's container, and how a Job is read back from the engine."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from radops.errors import NotFoundError, UsageError
from radops.executors.docker.labels import (
    job_from_inspect,
    job_from_summary,
    job_labels,
    match_job,
    match_job_id,
)
from radops.executors.docker.prune import unused_radops_images
from radops.executors.model import (
    Image,
    Job,
    JobRequest,
    check_new_name,
    container_name,
    name_taken,
    new_job_id,
)
from radops.executors.ssh.scripts import name_taken as name_taken_line

COMMAND = ["python", "train.py", "--lr", "3e-4", "a b", "$(id)"]


def labels(name: str | None = None) -> dict[str, str]:
    request = JobRequest(context=Path("."), command=COMMAND, name=name)
    return job_labels("0123456789ab", "gpu1", "radops/train:feedbeef00000000", request)


def test_job_ids_are_12_hex_digits_and_differ() -> None:
    ids = {new_job_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids)
    assert container_name("0123456789ab") == "radops-0123456789ab"


def test_labels_carry_everything_needed_to_find_a_job_again() -> None:
    written = labels()
    assert written["dev.radops.job-id"] == "0123456789ab"
    assert written["dev.radops.executor"] == "gpu1"
    assert written["dev.radops.image"] == "radops/train:feedbeef00000000"
    assert json.loads(written["dev.radops.command"]) == COMMAND
    created = datetime.fromisoformat(written["dev.radops.created-at"])
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 60
    assert "dev.radops.name" not in written
    assert labels("my run")["dev.radops.name"] == "my run"


def inspect(status: str, exit_code: int, label_set: dict[str, str]) -> dict[str, Any]:
    return {"Config": {"Labels": label_set}, "State": {"Status": status, "ExitCode": exit_code}}


def test_job_from_inspect_round_trips_the_labels() -> None:
    job = job_from_inspect(inspect("exited", 3, labels("my run")), "fallback")
    assert job.id == "0123456789ab"
    assert job.executor == "gpu1"
    assert (job.status, job.exit_code) == ("exited", 3)
    assert job.command == COMMAND
    assert job.image == "radops/train:feedbeef00000000"
    assert job.name == "my run"
    assert job.created_at is not None and job.created_at.tzinfo is not None


def test_running_job_has_no_exit_code() -> None:
    assert job_from_inspect(inspect("running", 0, labels()), "gpu1").exit_code is None


def test_job_to_json() -> None:
    data = job_from_inspect(inspect("exited", 0, labels()), "gpu1").to_json()
    assert data["job_id"] == "0123456789ab"
    assert data["executor"] == "gpu1"
    assert data["command"] == COMMAND
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    ("status", "state", "expected"),
    [
        ("Exited (0) 3 seconds ago", "exited", 0),
        ("Exited (137) About a minute ago", "exited", 137),
        ("Exited (-1) 2 hours ago", "exited", -1),
        ("Up 5 seconds", "running", None),
        ("Created", "created", None),
    ],
)
def test_job_from_summary_reads_the_exit_code(status: str, state: str, expected: int) -> None:
    job = job_from_summary({"State": state, "Status": status, "Labels": labels()}, "gpu1")
    assert (job.status, job.exit_code) == (state, expected)
    assert job.command == COMMAND


def test_damaged_labels_do_not_break_reading() -> None:
    damaged = {**labels(), "dev.radops.command": "not json", "dev.radops.created-at": "yesterday"}
    job = job_from_summary({"State": "exited", "Status": "Exited (1)", "Labels": damaged}, "g")
    assert job.command == [] and job.created_at is None and job.exit_code == 1


CANDIDATES = ["3f2a9c1b7d4e", "3f2a00000000", "a1b2c3d4e5f6", "a1b2"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [("3f2a9c1b7d4e", "3f2a9c1b7d4e"), ("3f2a9", "3f2a9c1b7d4e"), ("a1b2", "a1b2")],
)
def test_match_job_id(given: str, expected: str) -> None:
    assert match_job_id(given, CANDIDATES, "gpu1") == expected


def test_match_job_id_ambiguous_prefix() -> None:
    with pytest.raises(UsageError) as info:
        match_job_id("3f2a", CANDIDATES, "gpu1")
    assert "3f2a" in info.value.message


@pytest.mark.parametrize("given", ["ffff", "", "3f2a9c1b7d4e0"])
def test_match_job_id_unknown(given: str) -> None:
    with pytest.raises(NotFoundError):
        match_job_id(given, CANDIDATES, "gpu1")


def _job(job_id: str, name: str | None = None) -> Job:
    return Job(job_id, "gpu1", "running", None, None, [], "radops/x:0123456789abcdef", name)


# An important job, a later job named after the start of its id (accepted before radops refused
# such names, or named first), one named like the first one's whole id, and two twins.
IMPORTANT = _job("e85a1b2c3d4e", "important-training")
SHORT_NAMED = _job("0123456789ab", "e85")
ID_NAMED = _job("fedcba987654", "e85a1b2c3d4e")
TWINS = [_job("aaaa00000000", "twin"), _job("bbbb00000000", "twin")]
JOBS = [IMPORTANT, SHORT_NAMED, ID_NAMED, *TWINS]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("e85a1b2c3d4e", IMPORTANT.id),  # a whole id beats a name
        ("e85", SHORT_NAMED.id),  # a name beats an id prefix
        ("e85a", IMPORTANT.id),  # an id prefix, when nothing is named so
        ("important-training", IMPORTANT.id),
        ("0123", SHORT_NAMED.id),
        ("fedcba987654", ID_NAMED.id),
    ],
)
def test_a_reference_is_an_id_then_a_name_then_an_id_prefix(ref: str, expected: str) -> None:
    assert match_job(ref, JOBS, "gpu1") == expected
    # The order of the listing changes nothing.
    assert match_job(ref, list(reversed(JOBS)), "gpu1") == expected


def test_an_ambiguous_reference_is_one_line_with_a_hint() -> None:
    with pytest.raises(UsageError) as named:
        match_job("twin", JOBS, "gpu1")
    assert named.value.message == "2 jobs on 'gpu1' are named 'twin'"
    assert named.value.hint and "radops executors jobs gpu1" in named.value.hint
    with pytest.raises(UsageError) as prefix:
        match_job("f", [*JOBS, _job("f00000000000")], "gpu1")
    assert prefix.value.message == "job id 'f' matches 2 jobs on 'gpu1'"
    assert "\n" not in named.value.message + prefix.value.message
    with pytest.raises(NotFoundError):
        match_job("e86", JOBS, "gpu1")


def test_a_new_name_that_starts_a_job_id_is_refused_naming_that_job() -> None:
    with pytest.raises(UsageError) as refused:
        check_new_name("e85a", lambda: JOBS, "gpu1")
    assert refused.value.message == (
        "--name 'e85a' is the start of the id of job e85a1b2c3d4e on 'gpu1', which 'e85a' "
        "names today"
    )
    check_new_name("e85-run2", lambda: JOBS, "gpu1")  # no id starts with it
    check_new_name("important-training", lambda: JOBS, "gpu1")  # names may repeat

    def no_listing() -> list[Job]:
        raise AssertionError("a run without --name lists no jobs")

    check_new_name(None, no_listing, "gpu1")


def test_an_id_a_remote_sent_is_shown_only_if_it_is_one() -> None:
    stderr = b"some banner\nradops:name-taken e85a1b2c3d4e\n"
    assert name_taken_line(stderr) == "e85a1b2c3d4e"
    assert name_taken_line(b"Error: No such image\n") is None
    hostile = name_taken("e85", "\x1b]0;pwned\x07", "gpu1")
    assert "another job" in hostile.message and "\x1b" not in hostile.message


@pytest.mark.parametrize("name", ["0123456789ab", "e85a1b2c3d4e"])
def test_a_name_with_the_shape_of_an_id_is_refused(name: str) -> None:
    with pytest.raises(UsageError, match="has the shape of a job id"):
        JobRequest(context=Path("."), command=[], name=name)


@pytest.mark.parametrize("name", ["0123456789a", "0123456789abc", "0123456789AB", "e85"])
def test_names_near_the_shape_of_an_id_are_fine(name: str) -> None:
    assert JobRequest(context=Path("."), command=[], name=name).name == name


def test_prune_takes_the_names_radops_holds_images_by_and_nothing_else() -> None:
    images = [
        Image("sha256:1", ["radops/train:0123456789abcdef"], 1),
        Image("sha256:2", ["radops/train:build-0123456789ab"], 1),  # a killed remote build's
        Image("sha256:3", ["radops/train:old-0123456789ab"], 1),  # what --no-cache replaced
        Image("sha256:4", ["myteam/train:build-0123456789ab"], 1),  # not radops' name
        Image("sha256:5", ["radops/train:latest", "radops/train:build-1"], 1),
        Image("sha256:8", ["mine:v1", "radops/train:old-0123456789ab"], 1),  # the user's too
        Image("sha256:6", [], 1),  # dangling: radops cannot tell whose
        Image("sha256:7", ["radops/train:build-0123456789ab"], 1),  # used by a container
    ]
    found = unused_radops_images(images, {"sha256:7"})
    assert [image.id for image in found] == ["sha256:1", "sha256:2", "sha256:3", "sha256:8"]
    assert found[-1].refs == ["radops/train:old-0123456789ab"]  # only radops' name goes


def test_a_long_recorded_value_goes_in_pieces_under_the_argument_limit() -> None:
    from radops.executors.docker.labels import LABEL_PIECE, job_from_labels, job_labels
    from radops.executors.model import JobRequest
    from radops.executors.run_options import parse_run_options

    command = ["sh", *("é" * 30_000 for _ in range(10))]  # JSON escapes each é as \u00e9
    options = parse_run_options(labels=["one=" + "a" * 70_000, "two=" + "b" * 70_000])
    request = JobRequest(context=Path("/x"), command=command, options=options)
    labels = job_labels("0123456789ab", "box", "radops/x:1", request)
    assert max(len(f"{k}={v}".encode()) for k, v in labels.items()) < 128 * 1024
    assert len([k for k in labels if k.startswith("dev.radops.command")]) > 1
    assert all(len(v) <= LABEL_PIECE for v in labels.values())
    job = job_from_labels(labels, "box", "running")
    assert job.command == command
    assert job.options["labels"] == {"one": "a" * 70_000, "two": "b" * 70_000}
