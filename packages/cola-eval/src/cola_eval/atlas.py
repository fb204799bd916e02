"""Code atlas: what each latent action does. From a few held-out context frames, the world model is rolled out
with one latent action held fixed for every step, for the most used actions and a few rare ones; each row of
the grid is one action, labelled with its usage share over the evaluation set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cola_eval.codebook import CodebookUsage
from cola_eval.videos import labelled_row, to_frames, upscale, write_gif


@dataclass
class AtlasEntry:
    action: tuple[int, ...]
    share: float
    kind: str  # "top" or "rare"
    frames: torch.Tensor  # [N_context, T, C, H, W] float in [-1, 1]


def pick_atlas_actions(
    usage: CodebookUsage, num_top: int = 8, num_rare: int = 2
) -> list[tuple[tuple[int, ...], float, str]]:
    """The `num_top` most used combined actions and the `num_rare` least used (among those ever picked)."""
    ranked = usage.ranked_actions()
    if not ranked:
        raise ValueError("the codebook usage is empty; the atlas needs at least one encoded transition")
    top = ranked[:num_top]
    rare = ranked[num_top:][-num_rare:] if num_rare > 0 else []
    return [(a, s, "top") for a, s in top] + [(a, s, "rare") for a, s in rare]


@torch.no_grad()
def code_atlas(
    lam: Any,
    wm: Any,
    context: torch.Tensor,
    usage: CodebookUsage,
    horizon: int = 6,
    num_top: int = 8,
    num_rare: int = 2,
    steps: int = 10,
    guidance_scale: float = 1.0,
    seed: int = 0,
) -> list[AtlasEntry]:
    """Roll out every chosen action from every context clip [N, k, C, H, W] for `horizon` new frames, in one
    batched sampling call."""
    from cola_wm import sample

    if context.dim() != 5 or context.shape[0] == 0:
        raise ValueError(
            f"context must be a non-empty batch of frames [N, k, C, H, W], got {tuple(context.shape)}"
        )
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    chosen = pick_atlas_actions(usage, num_top, num_rare)
    device = next(wm.parameters()).device
    n, k = context.shape[:2]
    codes = torch.tensor([action for action, _, _ in chosen], device=device)  # [A, tokens]
    latent = lam.embed(codes).flatten(-2)  # [A, action_dim]
    total = k + horizon
    actions = latent[:, None, None, :].expand(-1, n, total - 1, -1).reshape(len(chosen) * n, total - 1, -1)
    contexts = context.to(device).repeat(len(chosen), 1, 1, 1, 1)
    generator = torch.Generator(device=device).manual_seed(seed)
    video = sample(
        wm,
        contexts,
        actions.to(contexts.dtype),
        num_frames=total,
        steps=steps,
        guidance_scale=guidance_scale,
        generator=generator,
    ).clamp(-1, 1)
    video = video.reshape(len(chosen), n, *video.shape[1:]).cpu()
    return [
        AtlasEntry(action=a, share=s, kind=kind, frames=video[i]) for i, (a, s, kind) in enumerate(chosen)
    ]


def _row(entry: AtlasEntry, t: int | None, scale: int) -> np.ndarray:
    """One labelled row: per context clip either the whole time strip (t None) or frame t."""
    clips = []
    for clip in entry.frames:
        frames = upscale(to_frames(clip), scale)
        strip = np.concatenate(list(frames), axis=1) if t is None else frames[t]
        clips.append(np.pad(strip, ((1, 1), (0, 6), (0, 0)), constant_values=255))
    codes = ",".join(str(c) for c in entry.action)
    label = f"codes ({codes})\nshare {entry.share:.1%}\n{entry.kind}"
    return labelled_row(label, np.concatenate(clips, axis=1))


def write_atlas(
    entries: list[AtlasEntry], out_dir: str | Path, prefix: str = "", scale: int = 1, fps: float = 4.0
) -> tuple[Path, Path]:
    """A PNG (each row: the action's rollout over time, per context clip) and a GIF (all rows animated)."""
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{prefix}code_atlas.png"
    Image.fromarray(np.concatenate([_row(e, None, scale) for e in entries], axis=0)).save(png)
    steps = entries[0].frames.shape[1]
    gif_frames = np.stack(
        [np.concatenate([_row(e, t, scale) for e in entries], axis=0) for t in range(steps)]
    )
    gif = write_gif(gif_frames, out_dir / f"{prefix}code_atlas.gif", fps=fps)
    return png, gif
