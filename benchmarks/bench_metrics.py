"""Cost of the evaluation metrics: SSIM + PSNR per frame, the Frechet distance of 400-d statistics (FVD's
size) and I3D forward passes (FVD features). Small sizes on CPU so CI stays fast; the I3D timing runs only
with CUDA or COLA_BENCH_LARGE=1 (one 10-frame clip takes ~2 s on one CPU core).

    uv run pytest benchmarks/bench_metrics.py -s --benchmark-disable
"""

import os
import sys
from pathlib import Path

import pytest
import torch
from cola_eval.fvd import preprocess_for_i3d
from cola_eval.i3d import InceptionI3d
from cola_eval.metrics import frechet_distance, psnr, ssim

sys.path.insert(0, str(Path(__file__).parent))
from benchtools import median_seconds

CUDA = torch.cuda.is_available()
LARGE = CUDA or os.environ.get("COLA_BENCH_LARGE") == "1"
DEVICE = "cuda" if CUDA else "cpu"


def test_frame_metrics_throughput():
    frames = 512 if LARGE else 64
    a = torch.rand(frames, 3, 64, 64, device=DEVICE) * 2 - 1
    b = (a + 0.1 * torch.randn_like(a)).clamp(-1, 1)
    seconds = median_seconds(lambda: (ssim(a, b), psnr(a, b)))
    print(
        f"\nSSIM+PSNR on {frames} 64x64 frames ({DEVICE}): {seconds * 1e3:.1f} ms = {frames / seconds:.0f} /s"
    )


def test_frechet_distance_400d():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 400, generator=g, dtype=torch.float64)
    sigma = x.T @ x / 999
    mu = torch.zeros(400, dtype=torch.float64)
    seconds = median_seconds(lambda: frechet_distance(mu, sigma, mu + 0.1, sigma * 1.1))
    print(f"\nFrechet distance of 400-d statistics (CPU, float64): {seconds * 1e3:.1f} ms")


@pytest.mark.skipif(not LARGE, reason="I3D at 224 px is seconds per clip on CPU; set COLA_BENCH_LARGE=1")
def test_i3d_forward():
    clips = 8
    model = InceptionI3d().eval().to(DEVICE)
    video = torch.rand(clips, 16, 3, 64, 64, device=DEVICE) * 2 - 1
    with torch.no_grad():
        seconds = median_seconds(lambda: model(preprocess_for_i3d(video)), repeats=3)
    print(
        f"\nI3D features of {clips} clip(s) x {video.shape[1]} frames at 224px ({DEVICE}): {seconds:.2f} s "
        f"= {clips / seconds:.2f} clips/s"
    )
