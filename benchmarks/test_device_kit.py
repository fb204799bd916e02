"""The GPU-machine kit (benchmarks/device/, docs/gpu-runbook.md) stays in step with CoLA's imports."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "device"))

from pins import CARRIED_AS_WHEELS, MISSING_ON_DEVICE, NOT_ON_DEVICE, ON_DEVICE_IMAGE, pins  # noqa: E402


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Top-level names of every import in ``path``, and of those at module level."""
    tree = ast.parse(path.read_text())
    every, module_level = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = {node.module.split(".")[0]}
        else:
            continue
        every |= names
        if node in tree.body:
            module_level |= names
    return every, module_level


def _source_files() -> list[Path]:
    return sorted(ROOT.glob("packages/*/src/**/*.py"))


def test_every_third_party_import_has_a_way_onto_the_gpu_machines():
    known = {*ON_DEVICE_IMAGE, *CARRIED_AS_WHEELS, *NOT_ON_DEVICE}
    unplaced = {}
    for path in _source_files():
        for name in _imports(path)[0]:
            if name in sys.stdlib_module_names or name.startswith("cola_") or name in known:
                continue
            unplaced.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert not unplaced, (
        f"imports with no way onto the GPU machines: {unplaced}; add each to benchmarks/device/pins.py "
        "(ON_DEVICE_IMAGE if the image has it, else its wheel to MISSING_ON_DEVICE and its module to "
        "CARRIED_AS_WHEELS)"
    )


def test_pyav_is_never_imported_at_module_level():
    # The GPU machines have no PyAV: --no-videos data must load and train without importing it.
    eager = [str(p.relative_to(ROOT)) for p in _source_files() if NOT_ON_DEVICE[0] in _imports(p)[1]]
    assert not eager, f"these import av at module level: {eager}; import it where a video is read or written"


def test_every_missing_wheel_has_a_pin_in_the_lock():
    lines = pins(ROOT / "uv.lock")
    assert [line.split("==")[0] for line in lines] == list(MISSING_ON_DEVICE)
    assert all(line.split("==")[1] for line in lines)


def test_the_device_scripts_parse():
    for script in ("prepare.sh", "env.sh", "simulate.sh", "../gpu.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "device" / script)], check=True)
