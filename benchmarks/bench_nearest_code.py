"""nearest_code: the Triton kernel vs eager PyTorch (cdist + argmin) vs torch.compile of that eager code.

Prints time per call and the peak extra GPU memory each one allocates (the eager code materialises
the N x K distance matrix; the kernel needs only its O(N) outputs).
On CUDA: fp32 inputs (and the kernel on bf16 copies, casts included), N in {16384, 65536, 262144},
K in {32, 1024}, D in {32, 64}. On CPU: one small size with the PyTorch code only, so CI stays fast
(Triton kernels are timed on a GPU only); COLA_BENCH_FULL=1 runs the full grid on CPU as well.

    uv run pytest benchmarks/bench_nearest_code.py -s --benchmark-disable
"""

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from cola_lam.kernels import nearest_code, nearest_code_reference, nearest_code_triton

sys.path.insert(0, str(Path(__file__).parent))
from benchtools import median_seconds, peak_extra_bytes

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
FULL = CUDA or os.environ.get("COLA_BENCH_FULL") == "1"
SIZES = (
    [(n, k, d) for n in (16384, 65536, 262144) for k in (32, 1024) for d in (32, 64)]
    if FULL
    else [(4096, 32, 32)]
)


def eager_cdist_argmin(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dist = torch.cdist(z, codebook)
    indices = dist.argmin(dim=1)
    return indices, dist.gather(1, indices[:, None]).squeeze(1).square()


def _implementations() -> dict[str, Callable]:
    if not CUDA:
        return {"eager": eager_cdist_argmin, "reference": nearest_code_reference}
    torch._dynamo.reset()  # one compile per size; avoids hitting dynamo's recompile limit across the grid
    return {
        "triton": nearest_code_triton,
        # bf16 inputs take the tensor-core path (fp32 inputs use an exact fp32 dot, no TF32)
        "triton-bf16": lambda z, codebook: nearest_code_triton(z.bfloat16(), codebook.bfloat16()),
        "eager": eager_cdist_argmin,
        "compile": torch.compile(eager_cdist_argmin, dynamic=False),
    }


@pytest.mark.parametrize(("n", "k", "d"), SIZES)
def test_nearest_code(benchmark, n, k, d):
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    z = torch.randn(n, d, device=DEVICE, generator=gen)
    codebook = torch.randn(k, d, device=DEVICE, generator=gen)
    repeats = 20 if CUDA else 3
    results = {}
    for name, fn in _implementations().items():
        seconds = median_seconds(lambda fn=fn: fn(z, codebook), repeats)
        extra = peak_extra_bytes(lambda fn=fn: fn(z, codebook), DEVICE)
        memory = "n/a (CPU)" if extra is None else f"{extra / 2**20:9.2f} MiB"
        results[name] = seconds
        label = f"nearest_code N={n:6d} K={k:4d} D={d:2d} {name:11s}"
        print(f"{label} {seconds * 1e6:10.1f} us  peak extra {memory}")
    if "triton" in results:
        agree = (nearest_code_triton(z, codebook)[0] == eager_cdist_argmin(z, codebook)[0]).float().mean()
        speedup_eager = results["eager"] / results["triton"]
        speedup_compile = results["compile"] / results["triton"]
        print(
            f"nearest_code N={n:6d} K={k:4d} D={d:2d} triton speed-up {speedup_eager:.2f}x vs eager, "
            f"{speedup_compile:.2f}x vs compile; index agreement with eager {agree:.5f}"
        )
    benchmark(lambda: nearest_code(z, codebook))
