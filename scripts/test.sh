#!/usr/bin/env bash
# The README's test command (what CI runs): prepare the machine, then lint, type-check, check the
# architecture contract and run every test, on real parts.
#   --fast   the same checks, then only the tests that need no Docker engine, rig, Slurm or
#            root, in parallel workers; prepares the virtualenv only (no apt, no dockerd)
# Other arguments go to pytest (then one run of what they select).
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
if ((${#ARGS[@]})); then
  exec "$BIN/pytest" "${ARGS[@]}"
fi

# The whole suite as two pytest sessions at once. The SSH/GCP rig's tests are the longest part
# and run one after another (the rig is one machine-wide lock); meanwhile the other session runs
# Slurm's, the local engine's and the rest. The rig's output is shown after the others'.
RIG_LOG="$(mktemp)"
# (A background job of a script ignores SIGINT; the rig's session must get Ctrl-C to stop it.)
env --default-signal=INT "$BIN/pytest" -m "rig or gcp_vm" --durations=15 >"$RIG_LOG" 2>&1 &
RIG_PID=$!
finish_rig() {  # wait for the rig's session (its teardown stops the rig), then show its output
  local status=0
  wait "$RIG_PID" || status=$?
  echo "================ the SSH/GCP rig's tests (run alongside the others) ================"
  cat "$RIG_LOG"
  rm -f "$RIG_LOG"
  return "$status"
}
trap 'finish_rig; exit 130' INT  # Ctrl-C reached the rig's session too
trap 'kill -INT "$RIG_PID" 2>/dev/null; finish_rig; exit 143' TERM
others=0
"$BIN/pytest" -m "not (rig or gcp_vm)" --durations=15 || others=$?
rig=0
finish_rig || rig=$?
exit $((others ? others : rig))
