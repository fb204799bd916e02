"""What the benchmarks share: the median time of a call (CUDA events on a GPU), the peaks of known GPUs, and
a trained run's held-out clips."""

import os
import time
from collections.abc import Callable

import torch


def median_seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median seconds per call of ``fn``, after one warm-up call (which also compiles, where it compiles)."""
    fn()
    cuda = torch.cuda.is_available()
    times = []
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
    return sorted(times)[len(times) // 2]


def held_out_dataset(data: dict):
    """The held-out ("test") clips of a cola-train run from its config's ``data`` section: its dataset at its
    clip length and frame skip."""
    from cola_train.data import ClipDataset, load_episodes

    return ClipDataset(
        load_episodes(data["path"]), data["clip_length"], frame_skip=data["frame_skip"], split="test"
    )


def spread_indices(count: int, n: int) -> list[int]:
    """Up to ``n`` indices of ``range(count)`` a fixed stride apart, from 0 (all of them when n >= count)."""
    return list(range(0, count, max(1, count // n)))[:n]


def evenly_spread(clips, max_clips: int) -> list:
    """At most ``max_clips`` items of ``clips`` (a dataset or a list) at an even stride from the first."""
    return [clips[i] for i in spread_indices(len(clips), max_clips)]


def peak_extra_bytes(fn: Callable[[], object], device: str) -> int | None:
    """Peak CUDA memory one call of ``fn`` allocates beyond what was allocated before it (None on CPU)."""
    if device == "cpu":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


# Peak HBM bandwidth (TB/s) and dense bf16 tensor-core throughput (TFLOP/s, no sparsity) from NVIDIA's data
# sheets, matched against torch.cuda.get_device_name() in this order: the first key contained in the name
# wins, so the specific variants (PCIe, NVL, 80GB) come before the plain names (the SXM parts).
GPU_PEAKS: tuple[tuple[str, float, float], ...] = (
    ("H100 PCIe", 2.0, 756.0),
    ("H100 NVL", 3.9, 835.0),
    ("H100", 3.35, 989.0),
    ("H200 NVL", 4.8, 835.0),
    ("H200", 4.8, 989.0),
    ("A100 80GB PCIe", 1.935, 312.0),
    ("A100-SXM4-80GB", 2.039, 312.0),
    ("A100", 1.555, 312.0),
)


def gpu_peaks(device_name: str) -> tuple[float | None, float | None, str]:
    """(peak HBM bytes/s, peak dense bf16 FLOP/s, where they came from) for a device name.

    COLA_PEAK_TBPS and COLA_PEAK_TFLOPS override the table (for GPUs it does not know, or to check a figure);
    a figure that is neither in the table nor set is None, and the percentages that need it are not computed.
    """
    entry = next((e for e in GPU_PEAKS if e[0] in device_name), None)
    tbps, tflops = (entry[1], entry[2]) if entry else (None, None)
    source = f"table entry {entry[0]!r}" if entry else f"no table entry for {device_name!r}"
    overrides = []
    if "COLA_PEAK_TBPS" in os.environ:
        tbps = float(os.environ["COLA_PEAK_TBPS"])
        overrides.append("COLA_PEAK_TBPS")
    if "COLA_PEAK_TFLOPS" in os.environ:
        tflops = float(os.environ["COLA_PEAK_TFLOPS"])
        overrides.append("COLA_PEAK_TFLOPS")
    if overrides:
        source += f", overridden by {' and '.join(overrides)}"
    return (
        None if tbps is None else tbps * 1e12,
        None if tflops is None else tflops * 1e12,
        source,
    )
