"""Random resized crops for the LAM's input: one crop per clip, the same for all its frames."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_resized_crop(video: torch.Tensor, generator: torch.Generator, scale_min: float) -> torch.Tensor:
    """Crop a random square covering a fraction in ``[scale_min, 1]`` of each clip's area, resized back.

    ``video`` is ``[B, T, C, H, W]``; the crop of clip ``b`` is drawn from ``generator`` (on the CPU, so the
    draw does not depend on the device) and applied to every frame of that clip, so motion inside the crop is
    preserved.
    """
    if scale_min >= 1.0:
        return video
    batch, frames, channels, height, width = video.shape
    draws = torch.rand(batch, 3, generator=generator, device=generator.device).cpu()
    crops = []
    for b in range(batch):
        scale = scale_min + (1.0 - scale_min) * draws[b, 0].item()
        side_h = max(1, round(height * math.sqrt(scale)))
        side_w = max(1, round(width * math.sqrt(scale)))
        top = int(draws[b, 1].item() * (height - side_h + 1))
        left = int(draws[b, 2].item() * (width - side_w + 1))
        patch = video[b, :, :, top : top + side_h, left : left + side_w]
        crops.append(F.interpolate(patch, size=(height, width), mode="bilinear", align_corners=False))
    return torch.stack(crops).reshape(batch, frames, channels, height, width)
