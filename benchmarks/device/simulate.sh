#!/usr/bin/env bash
# Rehearse a GPU call here, without a GPU, before spending device time: a Python 3.12 virtualenv with the
# GPU image's versions of what CoLA needs (torch 2.11.0, triton 3.6.0, huggingface-hub 1.33.0; no uv on PATH,
# no PyAV), set up by benchmarks/device/env.sh from the wheels benchmarks/device/prepare.sh made, then the
# GPU suite's dry run and the `smoke` reproduction with --no-videos, as docs/gpu-runbook.md runs them there.
# Usage: bash benchmarks/device/simulate.sh PYTHON3.12 [WORK_DIR]   (uv downloads the packages once, ~3 GB)
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${1:?usage: simulate.sh PYTHON3.12 [WORK_DIR] (a Python 3.12 interpreter, as on the GPU machines)}"
work="${2:-/tmp/cola-device-sim}"
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 12), sys.version' || {
    echo "simulate: $python is not Python 3.12 (the GPU machines' python3)" >&2
    exit 2
}
[ -d .device/wheels ] || bash benchmarks/device/prepare.sh
mkdir -p "$work/home"
if [ ! -x "$work/venv/bin/python3" ]; then
    uv venv --quiet --python "$python" "$work/venv"
    uv pip install --quiet --python "$work/venv/bin/python3" torch==2.11.0 triton==3.6.0 huggingface-hub==1.33.0 \
        einops safetensors numpy pyarrow h5py pyyaml tqdm pillow matplotlib opencv-python-headless hypothesis \
        pytest pytest-benchmark pip
fi
rm -rf "$work/site" "$work/gpu-dry" "$work/smoke"
# A clean environment: the virtualenv's python3 first on PATH, no uv, no inherited PYTHONPATH.
env -i HOME="$work/home" PATH="$work/venv/bin:/usr/bin:/bin" COLA_DEVICE_SITE="$work/site" \
    COLA_WEIGHTS_DIR="$work/no-metric-weights" bash -c "
    set -e
    cd '$PWD'
    if command -v uv >/dev/null; then echo 'simulate: uv is on PATH; the GPU machines have none' >&2; exit 1; fi
    source benchmarks/device/env.sh
    python3 benchmarks/gpu_suite.py --dry --out '$work/gpu-dry' || echo 'simulate: the dry suite reported errors (see its table)'
    python3 -m cola_eval.reproduction --size smoke --no-videos --out '$work/smoke'
"
echo "simulate: the device kit works; dry suite table in $work/gpu-dry, smoke results in $work/smoke"
