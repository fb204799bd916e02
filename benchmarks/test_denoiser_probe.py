"""benchmarks/denoiser_probe.py: the frame averaging its resolution arms and its scores rely on."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from denoiser_probe import area_resize, pooled_block_area


def test_area_resize_averages_each_block_of_pixels() -> None:
    frames = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 1, 3, 4, 4)
    small = area_resize(frames, 2)
    assert small.shape == (2, 1, 3, 2, 2)
    assert small[1, 0, 2, 1, 0] == frames[1, 0, 2, 2:4, 0:2].mean()
    assert area_resize(frames, 4) is frames


@pytest.mark.parametrize("size", [3, 8])
def test_area_resize_refuses_sizes_that_do_not_divide_the_frames(size: int) -> None:
    with pytest.raises(ValueError, match="must divide the collected size 4"):
        area_resize(torch.zeros(1, 3, 4, 4), size)


def test_pooled_block_area_is_a_ratio_of_totals() -> None:
    white = torch.ones(3, 8, 8)
    block = white.clone()
    block[:, 2:6, 2:6] = torch.tensor([118.0, 136.0, 153.0])[:, None, None] / 127.5 - 1  # PushT's block
    half = white.clone()
    half[:, 2:4, 2:6] = block[:, 2:4, 2:6]
    real = torch.stack([block, block])
    assert pooled_block_area(real, real) == 1.0
    assert pooled_block_area(torch.stack([half, block]), real) == 0.75
    assert pooled_block_area(torch.stack([white, white]), real) == 0.0
