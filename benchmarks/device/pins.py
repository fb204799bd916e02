"""Print ``name==version`` (uv.lock's pin) for each package the GPU machines' image lacks, one per line.

Read by benchmarks/device/prepare.sh. The list is what CoLA imports (through the PushT simulator included)
minus the image's packages (as the device tool's notes, KINDS.md, list them: torch, triton, numpy, einops,
safetensors, huggingface-hub, pyarrow, h5py, pyyaml, tqdm, pillow, matplotlib, opencv, hypothesis,
pytest-benchmark are there) and minus PyAV (see prepare.sh).
"""

import sys
import tomllib
from pathlib import Path

MISSING_ON_DEVICE = (
    "gym-pusht",
    "gymnasium",
    "farama-notifications",
    "pygame",
    "pymunk",
    "shapely",
    "cffi",
    "pycparser",
)
# The modules CoLA's packages import, by where a GPU machine gets them (benchmarks/test_device_kit.py holds
# every third-party import of packages/*/src to this list, so a new dependency cannot silently break it).
ON_DEVICE_IMAGE = (
    "torch",
    "triton",
    "numpy",
    "einops",
    "safetensors",
    "huggingface_hub",
    "pyarrow",
    "h5py",
    "yaml",
    "tqdm",
    "PIL",
    "matplotlib",
    "cv2",
    "hypothesis",
    "pytest",
    "pip",
)
CARRIED_AS_WHEELS = ("gym_pusht", "gymnasium", "pygame", "pymunk", "shapely")
NOT_ON_DEVICE = ("av",)  # PyAV: imported only where an mp4 is read or written; the device uses --no-videos


def pins(lock: Path) -> list[str]:
    packages = {entry["name"]: entry["version"] for entry in tomllib.loads(lock.read_text())["package"]}
    missing = [name for name in MISSING_ON_DEVICE if name not in packages]
    if missing:
        raise SystemExit(f"uv.lock pins no version of {missing}; run `uv lock` (or update MISSING_ON_DEVICE)")
    return [f"{name}=={packages[name]}" for name in MISSING_ON_DEVICE]


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    print("\n".join(pins(root / "uv.lock")), file=sys.stdout)
