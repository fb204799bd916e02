"""Fused AdaLN modulation and gated residual vs eager PyTorch and torch.compile (forward, forward + backward).

Prints time per call and the achieved memory bandwidth (bytes the op must move / time). On CUDA: bf16, tokens
x channels in {16384, 65536, 262144} x {384, 768, 1152}, per-frame modulation (16 frames per sample). On CPU,
one small size and the eager reference only, so CI stays fast (the Triton kernels can only be timed on a GPU).

    uv run pytest benchmarks/bench_adaln.py -s --benchmark-disable
"""

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from cola_wm.kernels import (
    adaln_modulate,
    adaln_modulate_reference,
    adaln_modulate_triton,
    gated_residual,
    gated_residual_reference,
    gated_residual_triton,
)

sys.path.insert(0, str(Path(__file__).parent))
from benchtools import median_seconds

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
DTYPE = torch.bfloat16 if CUDA else torch.float32
FRAMES = 16
SIZES = [(t, c) for t in (16384, 65536, 262144) for c in (384, 768, 1152)] if CUDA else [(4096, 96)]


def _implementations(reference: Callable, fused: Callable) -> dict[str, Callable]:
    if not CUDA:
        return {"eager": reference}
    return {"eager": reference, "compile": torch.compile(reference), "fused": fused}


def _report(
    op: str, tokens: int, channels: int, name: str, seconds: float, bytes_moved: int, phase: str
) -> None:
    print(
        f"{op:15s} {phase:8s} tokens={tokens:7d} C={channels:5d} {name:8s} "
        f"{seconds * 1e6:9.1f} us  {bytes_moved / seconds / 1e9:8.1f} GB/s"
    )


def _modulation(tokens: int, channels: int, count: int) -> tuple[torch.Tensor, ...]:
    batch = 2
    x = torch.randn(batch, tokens // batch, channels, device=DEVICE, dtype=DTYPE, requires_grad=True)
    mods = [
        torch.randn(batch, FRAMES, channels, device=DEVICE, dtype=DTYPE, requires_grad=True)
        for _ in range(count)
    ]
    return (x, *mods)


@pytest.mark.parametrize(("tokens", "channels"), SIZES)
def test_adaln_modulate(benchmark, tokens, channels):
    x, shift, scale = _modulation(tokens, channels, 2)
    grad = torch.randn_like(x)
    element = x.element_size()
    forward_bytes = 2 * x.numel() * element  # read x, write y
    backward_bytes = 3 * x.numel() * element  # read x and dy, write dx
    repeats = 20 if CUDA else 3
    for name, fn in _implementations(adaln_modulate_reference, adaln_modulate_triton).items():
        forward = median_seconds(lambda fn=fn: fn(x, shift, scale, 1e-6), repeats)
        both = median_seconds(lambda fn=fn: torch.autograd.backward(fn(x, shift, scale, 1e-6), grad), repeats)
        _report("adaln_modulate", tokens, channels, name, forward, forward_bytes, "fwd")
        _report("adaln_modulate", tokens, channels, name, both, forward_bytes + backward_bytes, "fwd+bwd")
    benchmark(lambda: adaln_modulate(x, shift, scale, 1e-6))


@pytest.mark.parametrize(("tokens", "channels"), SIZES)
def test_gated_residual(benchmark, tokens, channels):
    x, gate = _modulation(tokens, channels, 1)
    y = torch.randn_like(x, requires_grad=True)
    grad = torch.randn_like(x)
    element = x.element_size()
    forward_bytes = 3 * x.numel() * element  # read x and y, write out
    backward_bytes = 3 * x.numel() * element  # read dout and y, write dy (dx is dout itself)
    repeats = 20 if CUDA else 3
    for name, fn in _implementations(gated_residual_reference, gated_residual_triton).items():
        forward = median_seconds(lambda fn=fn: fn(x, y, gate), repeats)
        both = median_seconds(lambda fn=fn: torch.autograd.backward(fn(x, y, gate), grad), repeats)
        _report("gated_residual", tokens, channels, name, forward, forward_bytes, "fwd")
        _report("gated_residual", tokens, channels, name, both, forward_bytes + backward_bytes, "fwd+bwd")
    benchmark(lambda: gated_residual(x, y, gate))
