"""What the benchmarks share: the median time of a call, measured with CUDA events on a GPU."""

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
