#!/usr/bin/env bash
# Every GPU figure the issues ask for in one run (< 8 minutes on one H100/H200): kernel checks, benchmarks,
# one table in benchmarks/results/<date>-<gpu>.md and .json. Arguments go to gpu_suite.py (--dry, --only, --out).
# With uv (a developer's machine) it runs in the workspace's environment; without it (the device tool's GPU
# machines: no uv, no network) in the machine's python3 set up by benchmarks/device/env.sh from the wheels
# benchmarks/device/prepare.sh made (see docs/gpu-runbook.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v uv >/dev/null 2>&1; then
    exec uv run python benchmarks/gpu_suite.py "$@"
fi
# shellcheck source=device/env.sh
source benchmarks/device/env.sh
exec python3 benchmarks/gpu_suite.py "$@"
