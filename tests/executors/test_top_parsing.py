"""`top`'s parsing of nvidia-smi and docker stats output, on recorded output (no GPU here)."""
# ruff: noqa: E501 - recorded output lines are kept whole

from __future__ import annotations

from radops.executors.docker.top import parse_gpus, parse_stats
from radops.executors.model import GpuUse, JobUse

# `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total,temperature.gpu
#  --format=csv,noheader,nounits` on a machine with two A100s, and on a T4 in a VM whose driver
# does not report utilization for a MIG-less passthrough (the `[N/A]` form).
A100S = """\
0, NVIDIA A100-SXM4-40GB, 87, 31245, 40960, 61
1, NVIDIA A100-SXM4-40GB, 0, 4, 40960, 33
"""
T4_NA = "0, Tesla T4, [N/A], 0, 15360, [Not Supported]\n"

# `docker stats --no-stream --format '{{json .}}'` (Docker 20.10), one radops job, one other.
STATS = """\
{"BlockIO":"0B / 0B","CPUPerc":"398.21%","Container":"5b0c1d2e3f40","ID":"5b0c1d2e3f40","MemPerc":"12.50%","MemUsage":"7.8GiB / 62.5GiB","Name":"radops-5b0c1d2e3f40","NetIO":"1.2kB / 0B","PIDs":"37"}
{"BlockIO":"0B / 0B","CPUPerc":"0.00%","Container":"aa","ID":"aa","MemPerc":"0.01%","MemUsage":"1MiB / 62.5GiB","Name":"postgres","NetIO":"0B / 0B","PIDs":"5"}
{"BlockIO":"--","CPUPerc":"--","Container":"77b0","ID":"77b0","MemPerc":"--","MemUsage":"-- / --","Name":"radops-77b0aa11cc22","NetIO":"--","PIDs":"--"}
"""


def test_gpu_rows_with_numbers_and_with_not_available() -> None:
    assert parse_gpus(A100S) == [
        GpuUse(0, "NVIDIA A100-SXM4-40GB", 87, 31245, 40960, 61),
        GpuUse(1, "NVIDIA A100-SXM4-40GB", 0, 4, 40960, 33),
    ]
    assert parse_gpus(T4_NA) == [GpuUse(0, "Tesla T4", None, 0, 15360, None)]
    assert parse_gpus("") == []
    assert parse_gpus("NVIDIA-SMI has failed because it couldn't communicate\n") == []


def test_stats_rows_of_radops_jobs_only() -> None:
    assert parse_stats(STATS, "radops-") == [
        JobUse("5b0c1d2e3f40", 398.21, "7.8GiB", "62.5GiB", 12.5, 37),
        JobUse("77b0aa11cc22", None, "--", "--", None, None),  # a job that just ended
    ]
    assert parse_stats("not json\n", "radops-") == []
