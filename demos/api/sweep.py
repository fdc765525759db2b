"""A learning-rate sweep with radops' Python API: three jobs on one executor, waited for,
their output collected. Run it from the repository's root:

    python demos/api/sweep.py local          # or any registered executor: gpu1, hpc, ...
"""

from __future__ import annotations

import sys

import radops.api as radops
from radops.errors import RadopsError


def sweep(executor: str, rates: list[str]) -> dict[str, int]:
    """Start one job per learning rate, wait for every one; {rate: exit code}."""
    with radops.open_session(executor) as session:  # one connection for every call
        jobs = {}
        for rate in rates:
            request = radops.job_request(
                "demos/remote_execution", ["--lr", rate], name=f"sweep-lr-{rate}"
            )
            jobs[rate] = session.run(request)
            print(f"lr={rate}: job {jobs[rate].id}")
        codes = {}
        for rate, job in jobs.items():
            codes[rate] = session.wait(job.id)
            output = b"".join(chunk for _, chunk in session.logs(job.id))
            print(f"lr={rate}: exit {codes[rate]}: {output.decode().splitlines()[0]}")
        return codes


if __name__ == "__main__":
    try:
        results = sweep(sys.argv[1] if len(sys.argv) > 1 else "local", ["1e-3", "3e-4", "1e-4"])
    except RadopsError as e:
        sys.exit(f"radops: error: {e.message}")
    sys.exit(max(results.values()))
