#!/usr/bin/env bash
# The README's test command: prepare the machine, then lint, type-check, check the architecture
# contract and run every test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
BIN="${RADOPS_VENV:-$ROOT/.venv}/bin"
cd "$ROOT"
"$BIN/ruff" check src tests benchmarks
"$BIN/ruff" format --check src tests benchmarks
"$BIN/mypy"
"$BIN/lint-imports" --no-cache  # the architecture contract in pyproject.toml (layers, no cycles)
"$BIN/pytest" "$@"
