"""Batched world-model rollouts from held-out clips, driven by several kinds of latent actions; their scores.

    inferred  the IDM's latent actions of the true clip (the upper bound: the actions that really happened)
    adapter   the action adapter's latent actions from the clip's real actions (the paper's "ground truth ->
              adapter" setting)
    shuffled  the IDM's latent actions of another evaluated clip: real, in-distribution actions that did not
              happen here (clip j of N takes those of clip (j + N // 2) % N, the farthest partner in the set,
              whatever the batch size; consecutive clips of a dataset often overlap in one episode)
    random    uniformly random codes (the floor; delta-PSNR = PSNR(inferred) - PSNR(random), as in Genie)
    copy      no world model: the last context frame repeated (what a model that ignores its actions and
              predicts no motion scores)

Every source of one batch starts from the same context frames and the same sampling noise, so differences
between sources come from the actions alone. Beside PSNR and SSIM, every predicted frame gets the
controllability scores of cola_eval.controllability (moving-pixel PSNR; the PushT agent's position error when
the clips carry its states), and the world-model sources get action recovery: the share of latent-action
tokens the LAM's IDM names the same on the predicted clip as on the true one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from cola_train.model import check_compatible

from cola_eval.batches import clip_batches
from cola_eval.controllability import (
    agent_position_error,
    has_pusht_agent_states,
    moving_pixel_psnr,
    pusht_agent_positions,
)
from cola_eval.metrics import psnr, ssim

# Sources latent_actions draws for a batch on its own; evaluate_rollouts also takes ROLLOUT_SOURCES.
ACTION_SOURCES = ("inferred", "adapter", "random")
ROLLOUT_SOURCES = ("inferred", "adapter", "shuffled", "random", "copy")
# Sources that are world-model rollouts (all but copy): the ones action recovery is scored for.
WORLD_MODEL_SOURCES = ("inferred", "adapter", "shuffled", "random")


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
    guidance_scale: float | None = None,
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


@torch.no_grad()
def action_matches(
    lam: Any, predicted: torch.Tensor, true_indices: torch.Tensor, num_context: int = 1
) -> torch.Tensor:
    """Bool ``[B, T - num_context, tokens_per_action]``: where the LAM's IDM names a transition of the
    predicted clip ``[B, T, C, H, W]`` with the code it gives the true clip (``true_indices``, i.e.
    ``lam.encode(video).indices``), over the transitions that end in a predicted frame."""
    indices = lam.encode(predicted).indices
    if indices.shape != true_indices.shape:
        raise ValueError(
            f"true_indices must be the LAM's indices of the true clip, {tuple(indices.shape)}, got "
            f"{tuple(true_indices.shape)}"
        )
    return (indices == true_indices.to(indices.device))[:, num_context - 1 :]


@dataclass(frozen=True)
class Controllability:
    """One source's controllability numbers, each with the number of samples it averages. A score that could
    not be measured (no PushT states; no moving pixel; action recovery of the copy baseline) is None, n 0."""

    psnr: float  # dB, full frame
    n_frames: int
    moving_psnr: float | None  # dB, over the pixels where the true future differs from the last context frame
    n_moving_frames: int  # predicted frames with at least one moving pixel
    agent_error: float | None  # frame px between the agent read off the prediction and its true position
    n_agent_frames: int
    action_recovery: float | None  # % of latent-action tokens the IDM names the same as on the true clip
    n_action_tokens: int


def _mean(values: list[torch.Tensor], nan_means_missing: bool = False) -> tuple[float | None, int]:
    """Mean and count of the concatenated values (NaN entries left out when ``nan_means_missing``)."""
    if not values:
        return None, 0
    flat = torch.cat([v.flatten() for v in values]).double()
    if nan_means_missing:
        flat = flat[~flat.isnan()]
    return (float(flat.mean()) if flat.numel() else None), int(flat.numel())


@dataclass
class SourceScores:
    """Per-frame scores of one action source over all evaluated clips (predicted frames only)."""

    psnr: list[torch.Tensor] = field(default_factory=list)
    ssim: list[torch.Tensor] = field(default_factory=list)
    lpips: list[torch.Tensor] = field(default_factory=list)
    moving_psnr: list[torch.Tensor] = field(default_factory=list)  # NaN for frames where nothing moved
    agent_error: list[torch.Tensor] = field(default_factory=list)  # frame px, when the clips carry states
    action_matches: list[torch.Tensor] = field(default_factory=list)  # bool per token, world-model sources
    videos: list[torch.Tensor] = field(default_factory=list)  # uint8 [B, T, C, H, W], for FVD and GIFs

    def controllability(self) -> Controllability:
        psnr_mean, frames = _mean(self.psnr)
        moving, moving_frames = _mean(self.moving_psnr, nan_means_missing=True)
        error, error_frames = _mean(self.agent_error)
        recovery, tokens = _mean(self.action_matches)
        return Controllability(
            psnr=float(psnr_mean) if psnr_mean is not None else math.nan,
            n_frames=frames,
            moving_psnr=moving,
            n_moving_frames=moving_frames,
            agent_error=error,
            n_agent_frames=error_frames,
            action_recovery=None if recovery is None else 100.0 * recovery,
            n_action_tokens=tokens,
        )

    def summary(self) -> dict[str, Any]:
        frames = torch.cat(self.psnr)
        scores = self.controllability()
        out: dict[str, Any] = {
            "psnr": float(frames.mean()),
            "ssim": float(torch.cat(self.ssim).mean()),
            "n_clips": int(frames.shape[0]),
            "n_frames": int(frames.numel()),
            "moving_psnr": scores.moving_psnr,
            "n_moving_frames": scores.n_moving_frames,
            "agent_error": scores.agent_error,
            "n_agent_frames": scores.n_agent_frames,
            "action_recovery": scores.action_recovery,
            "n_action_tokens": scores.n_action_tokens,
        }
        if self.lpips:
            out["lpips"] = float(torch.cat(self.lpips).mean())
        return out


@dataclass
class RolloutEvaluation:
    scores: dict[str, SourceScores]
    real_videos: torch.Tensor  # uint8 [N, T, C, H, W]
    num_context: int
    agent_states: bool = False  # whether the agent position error was measured

    def summary(self) -> dict[str, dict[str, Any]]:
        return {source: scores.summary() for source, scores in self.scores.items()}

    def controllability(self) -> dict[str, Controllability]:
        """Each source's full-frame and moving-pixel PSNR, agent position error and action recovery."""
        return {source: scores.controllability() for source, scores in self.scores.items()}

    def _pair(self, first: str, second: str, what: str) -> tuple[Controllability, Controllability]:
        if first not in self.scores or second not in self.scores:
            raise ValueError(f"{what} needs rollouts with both {first!r} and {second!r} actions")
        return self.scores[first].controllability(), self.scores[second].controllability()

    def delta_psnr(self) -> float:
        """Controllability (Genie's delta-PSNR): PSNR with inferred actions minus PSNR with random actions."""
        if "inferred" not in self.scores or "random" not in self.scores:
            raise ValueError("delta-PSNR needs rollouts with both 'inferred' and 'random' actions")
        summary = self.summary()
        return summary["inferred"]["psnr"] - summary["random"]["psnr"]

    def moving_pixel_delta_psnr(self) -> float | None:
        """delta-PSNR over the moving pixels: moving-pixel PSNR with inferred minus with random actions; None
        when no pixel moved in any evaluated clip."""
        inferred, random = self._pair("inferred", "random", "moving-pixel delta-PSNR")
        if inferred.moving_psnr is None or random.moving_psnr is None:
            return None
        return inferred.moving_psnr - random.moving_psnr

    def agent_error_ratio(self) -> float | None:
        """Agent position error with inferred actions over that with shuffled ones (< 1: the world model puts
        the agent where its actions say); None without agent states, NaN when the shuffled error is 0."""
        inferred, shuffled = self._pair("inferred", "shuffled", "the agent-error ratio")
        if inferred.agent_error is None or shuffled.agent_error is None:
            return None
        return inferred.agent_error / shuffled.agent_error if shuffled.agent_error > 0 else math.nan

    def videos(self, source: str) -> torch.Tensor:
        return torch.cat(self.scores[source].videos)


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    return ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def from_uint8(video: torch.Tensor) -> torch.Tensor:
    return video.float() / 127.5 - 1


def uses_agent_states(dataset: Any, agent_states: bool | None) -> bool:
    """evaluate_rollouts' rule for scoring the agent's position: as asked when ``agent_states`` is a bool,
    else (auto) when the dataset is cola-train PushT data (``has_pusht_agent_states``)."""
    return has_pusht_agent_states(dataset) if agent_states is None else bool(agent_states)


@torch.no_grad()
def _true_actions(
    lam: Any,
    wm: Any,
    dataset: Sequence[dict[str, Any]],
    batch_size: int,
    max_clips: int | None,
    num_context: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The LAM's flattened latent actions [N, T-1, D] and code indices [N, T-1, tokens] of every clip, on
    the CPU; checks on the first batch that the models fit the data and ``num_context`` the clips."""
    quantized, indices = [], []
    device = next(wm.parameters()).device
    for index, batch in enumerate(clip_batches(dataset, batch_size, max_clips, "rollout evaluation")):
        video = batch["video"].to(device)
        if index == 0:
            check_compatible(lam, wm, video.shape[2:])
            if not 1 <= num_context < video.shape[1]:
                raise ValueError(
                    f"num_context must be in [1, clip length - 1] = [1, {video.shape[1] - 1}], "
                    f"got {num_context}"
                )
        out = lam.encode(video)
        quantized.append(out.quantized.flatten(-2).to(video.dtype).cpu())
        indices.append(out.indices.cpu())
    return torch.cat(quantized), torch.cat(indices)


def _score(
    scores: SourceScores,
    predicted: torch.Tensor,
    video: torch.Tensor,
    num_context: int,
    positions: torch.Tensor | None,
    matches: torch.Tensor | None,
    lpips_model: Any,
) -> None:
    from cola_eval.lpips import lpips_distance

    target, pred = video[:, num_context:], predicted[:, num_context:]
    scores.psnr.append(psnr(pred, target).cpu())
    scores.ssim.append(ssim(pred, target).cpu())
    scores.moving_psnr.append(moving_pixel_psnr(pred, target, video[:, num_context - 1 : num_context]).cpu())
    if positions is not None:
        scores.agent_error.append(agent_position_error(pred, positions).cpu())
    if matches is not None:
        scores.action_matches.append(matches.cpu())
    if lpips_model is not None:
        scores.lpips.append(lpips_distance(lpips_model, pred, target))
    scores.videos.append(to_uint8(predicted))


@torch.no_grad()
def evaluate_rollouts(
    wm: Any,
    lam: Any,
    dataset: Sequence[dict[str, Any]],
    sources: Sequence[str] = ("inferred", "random"),
    adapter: Any = None,
    num_context: int = 1,
    steps: int = 10,
    guidance_scale: float | None = None,
    batch_size: int = 8,
    max_clips: int | None = None,
    seed: int = 0,
    lpips_model: Any = None,
    agent_states: bool | None = None,
) -> RolloutEvaluation:
    """Roll out every clip of `dataset` once per action source (ROLLOUT_SOURCES) and score the predicted
    frames against the real ones: PSNR, SSIM, moving-pixel PSNR, LPIPS when a loaded LPIPS model is given,
    the PushT agent's position error when ``uses_agent_states(dataset, agent_states)`` (each clip's
    ``states [T, S]`` hold the agent's x, y in arena px in columns 0 and 1), and action recovery for the
    world-model sources. "shuffled" needs at least 2 clips."""
    for source in sources:
        if source not in ROLLOUT_SOURCES:
            raise ValueError(f"unknown action source {source!r}; choose from {ROLLOUT_SOURCES}")
    device = next(wm.parameters()).device
    with_states = uses_agent_states(dataset, agent_states)
    true_actions, true_indices = _true_actions(lam, wm, dataset, batch_size, max_clips, num_context)
    total = true_actions.shape[0]
    if "shuffled" in sources and total < 2:
        raise ValueError("the 'shuffled' source takes another clip's actions: evaluate at least 2 clips")
    partners = (torch.arange(total) + total // 2) % total
    scores = {source: SourceScores() for source in sources}
    real_videos = []
    done = 0
    for index, batch in enumerate(clip_batches(dataset, batch_size, max_clips, "rollout evaluation")):
        video = batch["video"].to(device)
        clips = slice(done, done + video.shape[0])
        done += video.shape[0]
        real_videos.append(to_uint8(video))
        positions = None
        if with_states:
            states = batch.get("states")
            if states is None or states.dim() != 3 or states.shape[-1] < 2:
                raise ValueError(
                    "agent position error needs clips with PushT 'states' [T, S >= 2] (agent x, y in arena "
                    "px); pass agent_states=False for data without them"
                )
            positions = pusht_agent_positions(states[:, num_context:], video.shape[-2:]).to(device)
        batch_seed = seed * 1_000_003 + index
        for source in sources:
            if source == "copy":
                last = video[:, num_context - 1 : num_context]
                predicted = torch.cat([video[:, :num_context], last.expand_as(video[:, num_context:])], 1)
                _score(scores[source], predicted, video, num_context, positions, None, lpips_model)
                continue
            if source == "inferred":
                actions = true_actions[clips].to(device)
            elif source == "shuffled":
                actions = true_actions[partners[clips]].to(device)
            else:
                generator = torch.Generator().manual_seed(batch_seed)
                actions = latent_actions(lam, video, source, adapter, batch.get("actions"), generator)
            predicted = rollout(wm, video, actions, num_context, steps, guidance_scale, batch_seed)
            predicted = predicted.clamp(-1, 1)
            matches = action_matches(lam, predicted, true_indices[clips], num_context)
            _score(scores[source], predicted, video, num_context, positions, matches, lpips_model)
    return RolloutEvaluation(
        scores=scores,
        real_videos=torch.cat(real_videos),
        num_context=num_context,
        agent_states=with_states,
    )
