#!/usr/bin/env bash
# The README's test command: prepare the machine, then lint, type-check, check the architecture
# contract and run every test, on real parts (what CI runs).
#   --fast   the same checks, then only the tests that need no Docker engine, rig, Slurm or
#            root, in parallel; prepares the virtualenv only (no apt, no dockerd)
# Other arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FAST=0
ARGS=()
for arg in "$@"; do
  if [ "$arg" = --fast ]; then FAST=1; else ARGS+=("$arg"); fi
done
if ((FAST)); then "$ROOT/scripts/bootstrap.sh" --venv-only; else "$ROOT/scripts/bootstrap.sh"; fi
BIN="${RADOPS_VENV:-$ROOT/.venv}/bin"
cd "$ROOT"
"$BIN/ruff" check src tests benchmarks
"$BIN/ruff" format --check src tests benchmarks
"$BIN/mypy"
"$BIN/lint-imports" --no-cache  # the architecture contract in pyproject.toml (layers, no cycles)
if ((FAST)); then
  # The markers come from the fixtures each test uses (tests/conftest.py). No engine here: a
  # test that reaches for one without its fixture fails, instead of using Docker unannounced.
  DOCKER_HOST=unix:///nonexistent/the-fast-tier-has-no-docker-engine \
    exec "$BIN/pytest" -n auto -m "not (engine or rig or slurm or gcp_vm or root)" \
    ${ARGS[@]+"${ARGS[@]}"}
fi
exec "$BIN/pytest" ${ARGS[@]+"${ARGS[@]}"}
