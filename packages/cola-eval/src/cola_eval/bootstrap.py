"""Bootstrap confidence intervals of the controllability contrasts over the evaluated clips.

A contrast such as the moving-pixel delta-PSNR is a difference of two means over a few dozen clips: which
clips were drawn moves it by tenths of a dB, as much as a target's margin. The clips are the unit that was
sampled (frames of one clip are not independent), so the percentile bootstrap resamples clips with
replacement and recomputes each contrast exactly as the point estimate pools it: frames of every drawn clip
together, the sources compared on the same clips.
"""

from __future__ import annotations

from typing import Any

import torch

DEFAULT_DRAWS = 2000
DEFAULT_LEVEL = 0.95


def _per_clip(frames: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip the sum of its finite-or-infinite frame scores and their count (NaN frames left out)."""
    values = torch.cat([v.reshape(v.shape[0], -1) for v in frames]).double()
    present = ~values.isnan()
    return torch.where(present, values, 0.0).sum(1), present.sum(1).double()


def _interval(samples: torch.Tensor, level: float) -> tuple[float, float] | None:
    samples = samples[samples.isfinite()]
    if samples.numel() == 0:
        return None
    tail = (1.0 - level) / 2
    low, high = torch.quantile(samples, torch.tensor([tail, 1.0 - tail], dtype=samples.dtype)).tolist()
    return low, high


def contrast_intervals(
    rollouts: Any, draws: int = DEFAULT_DRAWS, level: float = DEFAULT_LEVEL, seed: int = 0
) -> dict[str, tuple[float, float] | None]:
    """Percentile-bootstrap intervals at ``level`` of delta-PSNR (inferred - random), the moving-pixel
    delta-PSNR (inferred - random) and the agent-error ratio (inferred / shuffled) of a
    :class:`cola_eval.rollout.RolloutEvaluation`, resampling its clips ``draws`` times. A contrast whose
    sources were not rolled out (or that has no moving pixels, no agent states) is left out; one whose
    resamples are all undefined (e.g. +inf PSNR on both sides) is None."""
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    scores = rollouts.scores
    clips = torch.cat(next(iter(scores.values())).psnr).shape[0]
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.randint(0, clips, (draws, clips), generator=generator)
    weights = torch.zeros(draws, clips, dtype=torch.float64)
    weights.scatter_add_(1, drawn, torch.ones_like(drawn, dtype=torch.float64))

    def pooled(source: str, field: str) -> torch.Tensor | None:
        """Each draw's pooled mean of ``field`` over the frames of every drawn clip (k draws: k times)."""
        frames = getattr(scores[source], field)
        if not frames:
            return None
        sums, counts = _per_clip(frames)
        if counts.sum() == 0:
            return None
        return (weights @ sums) / (weights @ counts)

    out: dict[str, tuple[float, float] | None] = {}
    if "inferred" in scores and "random" in scores:
        out["delta_psnr"] = _interval(pooled("inferred", "psnr") - pooled("random", "psnr"), level)
        inferred, random = pooled("inferred", "moving_psnr"), pooled("random", "moving_psnr")
        if inferred is not None and random is not None:
            out["moving_delta_psnr"] = _interval(inferred - random, level)
    if "inferred" in scores and "shuffled" in scores:
        inferred, shuffled = pooled("inferred", "agent_error"), pooled("shuffled", "agent_error")
        if inferred is not None and shuffled is not None:
            out["agent_error_ratio"] = _interval(inferred / shuffled, level)
    return out
