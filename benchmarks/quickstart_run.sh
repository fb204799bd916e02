#!/bin/bash
# One timed quickstart and its report, for benchmarks/quickstart_table.py:
#   bash benchmarks/quickstart_run.sh OUT [--set KEY=VALUE ...]
# runs `cola-train quickstart --out OUT` with the given overrides, then `cola-eval report OUT/run --out
# OUT/report`, and writes the shell's wall-clock seconds of each to OUT.time. Run it alone on the machine:
# the wall time is a measurement only when nothing else shares the cores.
set -u
if [ $# -lt 1 ]; then
    echo "usage: bash benchmarks/quickstart_run.sh OUT [--set KEY=VALUE ...]" >&2
    exit 2
fi
out=${1%/}
shift
start=$(date +%s)
uv run cola-train quickstart --out "$out" "$@" > "$out.log" 2>&1
echo "quickstart rc=$? wall_s=$(( $(date +%s) - start ))" > "$out.time"
start=$(date +%s)
uv run cola-eval report "$out/run" --out "$out/report" > "$out.report.log" 2>&1
echo "report rc=$? wall_s=$(( $(date +%s) - start ))" >> "$out.time"
