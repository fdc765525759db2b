#!/usr/bin/env bash
# The README's demo: run demos/remote_execution on the local executor and print its logs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
RADOPS="${RADOPS_VENV:-$ROOT/.venv}/bin/radops"
cd "$ROOT"
set -x
JOB=$("$RADOPS" executors run local demos/remote_execution "testing remote execution" --quiet)
"$RADOPS" executors logs local "$JOB" --follow
"$RADOPS" executors jobs local
