#!/usr/bin/env bash
# Run HERE before a call of the device tool: puts in .device/wheels (git-ignored; name ".device" in the
# call's `carry`) every wheel a bare GPU machine of this workplace lacks, so benchmarks/device/env.sh can
# set CoLA up there without a network:
#   - CoLA's four packages, built from this checkout (their code is what runs there);
#   - the PushT simulator and its needs (gym-pusht, gymnasium, pygame, pymunk, shapely, cffi, ...), at the
#     versions uv.lock pins, for the machine's Python (3.12, x86-64 manylinux).
# PyAV is left out on purpose: its wheel (~35 MB) would push the carried tree past the tool's 64 MiB, so
# the device collects PushT with --no-videos (PNG frames in the parquet rows, read without PyAV).
# Usage: bash benchmarks/device/prepare.sh [PYTHON_VERSION]   (default 3.12, the machines' python3)
set -euo pipefail
cd "$(dirname "$0")/../.."
python_version="${1:-3.12}"
out=.device/wheels
rm -rf "$out"
mkdir -p "$out"
for package in cola-lam cola-wm cola-train cola-eval; do
    uv build --quiet --package "$package" --wheel --out-dir "$out"
done
mapfile -t pins < <(uv run --no-sync python benchmarks/device/pins.py)
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done
uv run --no-sync python -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$python_version" --implementation cp "${platforms[@]}" --dest "$out" "${pins[@]}"
du -sh "$out"
ls "$out"
