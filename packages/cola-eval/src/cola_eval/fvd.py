"""Frechet Video Distance: the Frechet distance between I3D (Kinetics-400) logit statistics of real and
generated clips.

Preprocessing (VideoGPT's variant): every frame is resized (shorter side to 224, bilinear, then centre-cropped
to 224x224) and kept in [-1, 1]; clips need >= 10 frames. The features are I3D's 400 class logits averaged
over time. StyleGAN-V's variant differs in resizing and is reported to give values ~10% apart, so compare FVDs
computed by the same code only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cola_eval.i3d import I3DConfig, InceptionI3d
from cola_eval.metrics import frechet_distance_from_features
from cola_eval.weights import WeightsSource, load_weights, resolve_weights_file

I3D_ENV_PREFIX = "COLA_I3D"
I3D_DEFAULT_FILENAME = "i3d_kinetics400.safetensors"


def load_i3d(source: WeightsSource | None = None, device: torch.device | str = "cpu") -> InceptionI3d:
    """The Kinetics-400 I3D in eval mode.

    Raises WeightsUnavailable (with the reason) when no weights can be had.
    """
    path = resolve_weights_file(
        source or WeightsSource(), "I3D (Kinetics-400)", I3D_ENV_PREFIX, I3D_DEFAULT_FILENAME
    )
    model = load_weights(InceptionI3d(I3DConfig()), path, "I3D")
    return model.eval().requires_grad_(False).to(device)


def preprocess_for_i3d(video: torch.Tensor, size: int = 224) -> torch.Tensor:
    """[B, T, C, H, W] in [-1, 1] -> [B, C, T, size, size] in [-1, 1] (shorter side resized, centre crop)."""
    if video.dim() != 5:
        raise ValueError(f"FVD expects videos [B, T, C, H, W], got shape {tuple(video.shape)}")
    b, t, c, h, w = video.shape
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    frames = F.interpolate(
        video.reshape(b * t, c, h, w).float(), size=(new_h, new_w), mode="bilinear", align_corners=False
    )
    top, left = (new_h - size) // 2, (new_w - size) // 2
    frames = frames[:, :, top : top + size, left : left + size].clamp(-1, 1)
    return frames.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4)


@torch.no_grad()
def i3d_features(i3d: InceptionI3d, videos: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """I3D logits [N, 400] of videos [N, T, C, H, W] in [-1, 1], computed in batches."""
    device = next(i3d.parameters()).device
    out = [
        i3d(preprocess_for_i3d(videos[i : i + batch_size].to(device))).cpu()
        for i in range(0, videos.shape[0], batch_size)
    ]
    return torch.cat(out)


def fvd(i3d: InceptionI3d, real: torch.Tensor, generated: torch.Tensor, batch_size: int = 8) -> float:
    """FVD between two sets of videos [N, T, C, H, W] (N >= 2 each; use hundreds+ for stable numbers)."""
    if real.shape[1:] != generated.shape[1:]:
        raise ValueError(
            f"FVD: real clips {tuple(real.shape)} and generated clips {tuple(generated.shape)} "
            "must share [T, C, H, W]"
        )
    return frechet_distance_from_features(
        i3d_features(i3d, real, batch_size), i3d_features(i3d, generated, batch_size)
    )
