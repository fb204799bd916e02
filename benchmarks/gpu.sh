#!/usr/bin/env bash
# Every GPU figure the issues ask for in one run (< 8 minutes on one H100/H200): kernel checks, benchmarks,
# one table in benchmarks/results/<date>-<gpu>.md and .json. Arguments go to gpu_suite.py (--dry, --only, --out).
set -euo pipefail
cd "$(dirname "$0")/.."
exec uv run python benchmarks/gpu_suite.py "$@"
