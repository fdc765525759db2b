"""What `top` shows: GPU use from `nvidia-smi`'s CSV query, and each job's CPU and memory from
`docker stats --no-stream`. Pure parsing, the same for every executor kind."""

from __future__ import annotations

import json

from radops.executors.model import GpuUse, JobUse

GPU_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,name,utilization.gpu,memory.used,memory.total,temperature.gpu",
    "--format=csv,noheader,nounits",
]
STATS_FORMAT = "{{json .}}"


def _number(text: str) -> int | None:
    """nvidia-smi's numbers; `[N/A]`, `[Not Supported]` and the like are None."""
    text = text.strip()
    try:
        return int(float(text))
    except ValueError:
        return None


def parse_gpus(csv_text: str) -> list[GpuUse]:
    """Lines of `GPU_QUERY`'s output: `0, NVIDIA A100-SXM4-40GB, 87, 31245, 40960, 61`."""
    gpus = []
    for line in csv_text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 6 or not fields[0].isdigit():
            continue
        # A name never has a comma in practice; if it had, the numbers are still the last four.
        name = ", ".join(fields[1:-4])
        used, total, temp = fields[-3:]
        utilization = _number(fields[-4])
        gpus.append(
            GpuUse(int(fields[0]), name, utilization, _number(used), _number(total), _number(temp))
        )
    return gpus


def _percent(text: str) -> float | None:
    try:
        return float(text.strip().rstrip("%"))
    except ValueError:
        return None


def parse_stats(lines: str, prefix: str) -> list[JobUse]:
    """`docker stats --no-stream --format '{{json .}}'` rows of containers named `prefix...`."""
    jobs = []
    for line in lines.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        name = str(row.get("Name", ""))
        if not name.startswith(prefix):
            continue
        used, _, limit = str(row.get("MemUsage", "")).partition(" / ")
        pids = str(row.get("PIDs", "")).strip()
        jobs.append(
            JobUse(
                job_id=name[len(prefix) :],
                cpu_percent=_percent(str(row.get("CPUPerc", ""))),
                memory_used=used.strip(),
                memory_limit=limit.strip(),
                memory_percent=_percent(str(row.get("MemPerc", ""))),
                pids=int(pids) if pids.isdigit() else None,
            )
        )
    return jobs
