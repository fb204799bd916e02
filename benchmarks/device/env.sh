# Source on a GPU machine of the device tool, from the repository root (where its commands start):
#     source benchmarks/device/env.sh || exit 1
# The machine has no network and no uv; its python3 holds torch, triton and most of what CoLA needs. This
# installs the wheels carried in .device/wheels (made here by benchmarks/device/prepare.sh; name ".device" in
# the call's `carry`) into a private folder, puts that folder on PYTHONPATH and checks that CoLA and the
# PushT simulator import. Then run with python3, e.g. `python3 benchmarks/gpu_suite.py` or
# `python3 -m cola_eval.reproduction --size gpu --no-videos ...` (no PyAV there: see prepare.sh).

cola_device_env() {
    local wheels=.device/wheels site="${COLA_DEVICE_SITE:-/tmp/cola-site}"
    if ! compgen -G "$wheels/cola_lam-*.whl" >/dev/null; then
        echo "device env: no CoLA wheels in $PWD/$wheels: run benchmarks/device/prepare.sh here first and" \
            "name .device in the call's carry" >&2
        return 1
    fi
    python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$wheels"/*.whl || {
        echo "device env: pip could not install the carried wheels into $site" >&2
        return 1
    }
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    python3 - <<'PY' || return 1
import importlib
import sys

import torch

missing = []
for name in ("cola_lam", "cola_wm", "cola_train", "cola_eval", "gym_pusht", "pygame", "pymunk", "cv2", "h5py"):
    try:
        importlib.import_module(name)
    except Exception as error:  # an import that fails for any reason makes the machine unusable
        missing.append(f"{name} ({type(error).__name__}: {error})")
if missing:
    sys.exit("device env: these do not import: " + "; ".join(missing))
import cola_lam

cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
print(f"device env: python {sys.version.split()[0]}, torch {torch.__version__}, cola {cola_lam.__version__}, {cuda}")
PY
}

cola_device_env
