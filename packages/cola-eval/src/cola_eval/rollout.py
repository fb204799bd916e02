"""Batched world-model rollouts from held-out clips, driven by three kinds of latent actions; their scores.

    inferred  the IDM's latent actions of the true clip (the upper bound: the actions that really happened)
    adapter   the action adapter's latent actions from the clip's real actions (the paper's "ground truth ->
              adapter" setting)
    random    uniformly random codes (the floor; delta-PSNR = PSNR(inferred) - PSNR(random), as in Genie)

Every source of one batch starts from the same context frames and the same sampling noise, so differences
between sources come from the actions alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from cola_eval.batches import clip_batches
from cola_eval.metrics import psnr, ssim

ACTION_SOURCES = ("inferred", "adapter", "random")


def check_compatible(lam: Any, wm: Any, frame_shape: Sequence[int]) -> None:
    """Raise ValueError when the LAM, the world model and the data's frames [C, H, W] do not fit together."""
    c, h, w = (int(s) for s in frame_shape)
    lam_cfg, wm_cfg = lam.config, wm.config
    for name, cfg in (("LAM", lam_cfg), ("world model", wm_cfg)):
        if (cfg.channels, cfg.frame_size, cfg.frame_size) != (c, h, w):
            raise ValueError(
                f"the {name} was built for {cfg.channels}x{cfg.frame_size}x{cfg.frame_size} frames but the "
                f"evaluation data has {c}x{h}x{w}; evaluate on data of the run's frame size (set the "
                "dataset's size to the model's frame_size)"
            )
    if wm_cfg.action_dim != lam_cfg.tokens_per_action * lam_cfg.code_dim:
        raise ValueError(
            f"the world model takes actions of {wm_cfg.action_dim} dims but the LAM gives "
            f"{lam_cfg.tokens_per_action} x {lam_cfg.code_dim}; the two models are not from one run"
        )


@torch.no_grad()
def latent_actions(
    lam: Any,
    video: torch.Tensor,
    source: str,
    adapter: Any = None,
    real_actions: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Flattened latent actions [B, T-1, tokens_per_action * code_dim] of one source for clips [B, T, ...]."""
    b, t = video.shape[:2]
    if source == "inferred":
        quantized = lam.encode(video).quantized
    elif source == "adapter":
        if adapter is None or real_actions is None:
            raise ValueError("the 'adapter' source needs an adapter and the clips' real actions")
        columns = adapter.config.action_columns
        quantized = adapter.to_latent(real_actions[:, : t - 1][..., columns].to(video.device))
    elif source == "random":
        cfg = lam.config
        # Drawn on the CPU so a seed gives the same codes on any device.
        indices = torch.randint(0, cfg.num_codes, (b, t - 1, cfg.tokens_per_action), generator=generator)
        quantized = lam.embed(indices.to(video.device))
    else:
        raise ValueError(f"unknown action source {source!r}; choose one of {ACTION_SOURCES}")
    return quantized.flatten(-2).to(video.dtype)


@torch.no_grad()
def rollout(
    wm: Any,
    video: torch.Tensor,
    actions: torch.Tensor,
    num_context: int = 1,
    steps: int = 10,
    guidance_scale: float = 1.0,
    seed: int = 0,
) -> torch.Tensor:
    """Roll the world model out over the length of `video` [B, T, C, H, W] from its first k frames."""
    from cola_wm import sample

    generator = torch.Generator(device=video.device).manual_seed(seed)
    return sample(
        wm,
        video[:, :num_context],
        actions,
        num_frames=video.shape[1],
        steps=steps,
        guidance_scale=guidance_scale,
        generator=generator,
    )


@dataclass
class SourceScores:
    """Per-frame scores of one action source over all evaluated clips (predicted frames only)."""

    psnr: list[torch.Tensor] = field(default_factory=list)
    ssim: list[torch.Tensor] = field(default_factory=list)
    lpips: list[torch.Tensor] = field(default_factory=list)
    videos: list[torch.Tensor] = field(default_factory=list)  # uint8 [B, T, C, H, W], for FVD and GIFs

    def summary(self) -> dict[str, Any]:
        frames = torch.cat(self.psnr)
        out: dict[str, Any] = {
            "psnr": float(frames.mean()),
            "ssim": float(torch.cat(self.ssim).mean()),
            "n_clips": int(frames.shape[0]),
            "n_frames": int(frames.numel()),
        }
        if self.lpips:
            out["lpips"] = float(torch.cat(self.lpips).mean())
        return out


@dataclass
class RolloutEvaluation:
    scores: dict[str, SourceScores]
    real_videos: torch.Tensor  # uint8 [N, T, C, H, W]
    num_context: int

    def summary(self) -> dict[str, dict[str, Any]]:
        return {source: scores.summary() for source, scores in self.scores.items()}

    def delta_psnr(self) -> float:
        """Controllability (Genie's delta-PSNR): PSNR with inferred actions minus PSNR with random actions."""
        if "inferred" not in self.scores or "random" not in self.scores:
            raise ValueError("delta-PSNR needs rollouts with both 'inferred' and 'random' actions")
        summary = self.summary()
        return summary["inferred"]["psnr"] - summary["random"]["psnr"]

    def videos(self, source: str) -> torch.Tensor:
        return torch.cat(self.scores[source].videos)


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    return ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def from_uint8(video: torch.Tensor) -> torch.Tensor:
    return video.float() / 127.5 - 1


@torch.no_grad()
def evaluate_rollouts(
    wm: Any,
    lam: Any,
    dataset: Sequence[dict[str, Any]],
    sources: Sequence[str] = ("inferred", "random"),
    adapter: Any = None,
    num_context: int = 1,
    steps: int = 10,
    guidance_scale: float = 1.0,
    batch_size: int = 8,
    max_clips: int | None = None,
    seed: int = 0,
    lpips_model: Any = None,
) -> RolloutEvaluation:
    """Roll out every clip of `dataset` once per action source and score the predicted frames against the
    real ones (PSNR, SSIM, and LPIPS when a loaded LPIPS model is given)."""
    from cola_eval.lpips import lpips_distance

    for source in sources:
        if source not in ACTION_SOURCES:
            raise ValueError(f"unknown action source {source!r}; choose from {ACTION_SOURCES}")
    device = next(wm.parameters()).device
    scores = {source: SourceScores() for source in sources}
    real_videos = []
    for index, batch in enumerate(clip_batches(dataset, batch_size, max_clips, "rollout evaluation")):
        video = batch["video"].to(device)
        if index == 0:
            check_compatible(lam, wm, video.shape[2:])
            if not 1 <= num_context < video.shape[1]:
                raise ValueError(
                    f"num_context must be in [1, clip length - 1] = [1, {video.shape[1] - 1}], "
                    f"got {num_context}"
                )
        real_videos.append(to_uint8(video))
        batch_seed = seed * 1_000_003 + index
        for source in sources:
            generator = torch.Generator().manual_seed(batch_seed)
            actions = latent_actions(lam, video, source, adapter, batch.get("actions"), generator)
            predicted = rollout(wm, video, actions, num_context, steps, guidance_scale, batch_seed)
            target, pred = video[:, num_context:], predicted[:, num_context:].clamp(-1, 1)
            scores[source].psnr.append(psnr(pred, target).cpu())
            scores[source].ssim.append(ssim(pred, target).cpu())
            if lpips_model is not None:
                scores[source].lpips.append(lpips_distance(lpips_model, pred, target))
            scores[source].videos.append(to_uint8(predicted))
    return RolloutEvaluation(scores=scores, real_videos=torch.cat(real_videos), num_context=num_context)
