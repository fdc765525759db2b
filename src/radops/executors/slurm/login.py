"""The Slurm login node's answers, read: `check`'s report (partitions, runtimes), and what a
failed script or Slurm command there means, as one-line errors."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from radops.errors import ConfigError, EngineUnreachableError, RadopsError
from radops.executors.docker.argv import error_line
from radops.executors.model import EngineReport

if TYPE_CHECKING:
    from radops.specs import SlurmExecutorSpec


@dataclass(frozen=True)
class SlurmReport(EngineReport):
    """What `check` found on a Slurm cluster: its version, partitions and GPUs (GRES)."""

    partitions: list[dict[str, str]] = field(default_factory=list)
    runtime: str = ""
    runtimes_found: list[tuple[str, str]] = field(default_factory=list)  # (name, its path)

    def summary(self) -> str:
        parts = ", ".join(
            f"{p['name']} ({p['nodes']} node(s){', ' + p['gres'] if p['gres'] else ''})"
            for p in self.partitions
        )
        return (
            f"{self.executor}: Slurm {self.server_version}, partitions {parts or 'none'}; "
            f"runtime {self.runtime}"
        )

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "scheduler": "slurm", "partitions": self.partitions,
                "runtime": self.runtime}  # fmt: skip


def login_error(
    status: int, text: str, what: str, host: str, executor: str, job_dir: str
) -> RadopsError:
    """What a failed script or Slurm command on the login node means, in one line."""
    if text.startswith("radops:refused "):
        why = text.removeprefix("radops:refused ").split("\n")[0].split()
        return refused_error(why, executor, job_dir)
    line = slurm_line(text) or f"exit status {status}"
    lowered = text.lower()
    if "munge" in lowered or "authentication credential" in lowered:
        return EngineUnreachableError(
            f"Slurm's authentication (munge) failed on {host}: {line}",
            "munged must run on the login node and on every node, with the cluster's key "
            "(ask the cluster's admins).",
        )
    if "unable to contact slurm controller" in lowered or "connection refused" in lowered:
        return EngineUnreachableError(
            f"the Slurm controller does not answer {host}: {line}",
            "Check `sinfo` on the login node; the cluster may be down for maintenance.",
        )
    if status == 127 or "command not found" in lowered or ": not found" in lowered:
        return RadopsError(
            f"Slurm's commands (sbatch, squeue) are not on {host}'s PATH",
            "Log in and check `command -v sbatch`; radops runs them with the login shell's PATH.",
        )
    return RadopsError(f"{what} on {executor}: {line}")


def refused_error(why: list[str], executor: str, job_dir: str) -> ConfigError:
    """A login-node script's refusal of the job dir (or of a job folder in it), in one line.
    The scripts refuse a job dir others could write to or repoint: a `job.json` planted there
    would steer what radops removes."""
    where = shlex.quote(job_dir)
    kind, detail = (why or ["?"])[0], " ".join(why[1:])
    head = f"job folder {where} on {executor}"
    if kind == "mode":
        return ConfigError(
            f"{head} can be written by other users ({detail}); make it yours alone: "
            f"chmod 700 {where}"
        )
    if kind == "owner":
        line = f"{head} belongs to another user (uid {detail})"
    elif kind == "symlink":
        line = f"{head} is a symbolic link"
    else:  # not-a-folder, job-id, job-symlink: radops asks for no such thing itself
        line = f"{head}: refused ({kind})"
    return ConfigError(
        line,
        f"Use a folder of your own (mkdir -m 700 DIR; radops executors set {executor} "
        "--job-dir DIR), or make this one yours alone: chmod 700 DIR.",
    )


def detected_runtime(
    spec: SlurmExecutorSpec, report: EngineReport
) -> tuple[SlurmExecutorSpec, EngineReport]:
    """The spec with the runtime the check found on the login node: pyxis, else docker at
    the given path, else podman. None found: docker (login nodes often lack it)."""
    if not isinstance(report, SlurmReport):
        return spec, report
    found = dict(report.runtimes_found)
    if "pyxis" in found:
        runtime, path = "pyxis", "srun"
    elif spec.docker_path in found or "docker" in found:
        runtime, path = "docker", spec.docker_path if spec.docker_path in found else found["docker"]
    elif "podman" in found:
        runtime, path = "podman", found["podman"]
    else:
        runtime, path = "docker", spec.docker_path
    spec = spec.model_copy(update={"runtime": runtime, "docker_path": path})
    return spec, replace(report, runtime=runtime)


def slurm_line(text: str) -> str:
    """The line of a Slurm client's error that says what went wrong, without its prefixes."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line] or lines
    if not errors:
        return ""
    line = errors[-1]
    for prefix in ("sbatch: error: ", "squeue: error: ", "sinfo: error: ", "scancel: error: "):
        line = line.removeprefix(prefix)
    return error_line(line).removeprefix("Batch job submission failed: ")


def parse_check(text: str) -> tuple[str, int | None, str, str, list[tuple[str, str]]]:
    version, uname, sinfo_status = "", "", None
    found: list[tuple[str, str]] = []
    head, _, rest = text.partition("radops:sinfo ")
    for line in head.splitlines():
        if line.startswith("radops:version "):
            version = line.removeprefix("radops:version ")
    status_text, _, body = rest.partition("\n")
    if status_text.strip().isdigit():
        sinfo_status = int(status_text)
    sinfo_lines = []
    for line in body.splitlines():
        if line.startswith("radops:uname "):
            uname = line.removeprefix("radops:uname ")
        elif line.startswith("radops:has "):
            runtime, _, path = line.removeprefix("radops:has ").partition(" ")
            found.append((runtime, path))
        else:
            sinfo_lines.append(line)
    return version, sinfo_status, "\n".join(sinfo_lines), uname, found


def partitions(sinfo: str) -> list[dict[str, str]]:
    """`sinfo -o %R|%a|%D|%G|%c` rows, one per partition (GRES rows of a partition merged)."""
    found: dict[str, dict[str, str]] = {}
    for line in sinfo.splitlines():
        parts = line.split("|")
        if len(parts) != 5:
            continue
        name, avail, nodes, gres, cpus = parts
        entry = found.setdefault(name, {"name": name, "state": avail, "nodes": "0", "gres": "",
                                        "cpus": cpus})  # fmt: skip
        entry["nodes"] = str(int(entry["nodes"]) + (int(nodes) if nodes.isdigit() else 0))
        if gres and gres != "(null)" and gres not in entry["gres"].split(","):
            entry["gres"] = ",".join(g for g in (entry["gres"], gres) if g)
    return list(found.values())
