"""Code atlas: what each latent action does.

From one or a few held-out start frames, the world model is rolled out with one combined latent action (one
code per token, as the LAM's IDM picks them on held-out clips) repeated at every transition, for the most used
actions and a few rare ones, over a horizon that may span several DiT windows (``cola_wm.sample`` slides).
Every row is sampled with the same noise, so rows differ by their action alone. Each row is scored from its
own frames:

    agent displacement  the PushT agent's position (read off the frames by its colour) minus its position in
                        the start frame (the last context frame), in frame px; PushT only
    static PSNR         PSNR of each predicted frame against the start frame over the pixels that are
                        agent-coloured in neither frame (and not next to such a pixel), capped at
                        PSNR_CEILING: a static-scene proxy for "the T block and the goal stay intact". It is
                        no block tracker: it also drops when the agent really pushes the block, so read it
                        beside the real clip's own score. Without PushT, all pixels count.

With held-out clips as long as the rollout, two reference rows lead the atlas: "real" (the clip itself) and
"true" (the rollout driven by the LAM's inferred actions of that clip, also scored by PSNR against it).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cola_eval.codebook import CodebookUsage
from cola_eval.controllability import agent_mask, agent_positions, masked_psnr
from cola_eval.evaluation import metric
from cola_eval.metrics import psnr
from cola_eval.rollout import latent_actions
from cola_eval.videos import labelled_row, to_frames, upscale, write_gif

# Static PSNR is capped here: frames this close look the same, and the cap keeps means and curves finite where
# the scene is exactly unchanged (real PushT frames, where only the agent moves).
PSNR_CEILING = 60.0
# PNG layout: the label panel, the header of frame numbers, white gaps after every frame and after every start
# frame's strip, and one white pixel above and below each row.
LABEL_WIDTH = 150
HEADER_HEIGHT = 16
FRAME_GAP = 2
CLIP_GAP = 6
NO_AGENT = "the clips carry no PushT agent states, so no agent is read off the frames"


@dataclass
class AtlasEntry:
    """One row of the atlas: a rollout from every start frame with one action held fixed (kind "top" or
    "rare"), the LAM's inferred actions of the real clip ("true") or the real clip itself ("real")."""

    action: tuple[int, ...] | None  # the code of each token; None for "true" and "real"
    share: float | None  # share of the held-out transitions that picked the action
    kind: str  # "top", "rare", "true" or "real"
    frames: torch.Tensor  # [N_start, T, C, H, W] float in [-1, 1], the context frames first
    uses: int | None = None  # held-out transitions that picked the action
    static_psnr: torch.Tensor | None = None  # [N_start, horizon] dB, see the module docstring
    displacement: torch.Tensor | None = None  # [N_start, T, 2] agent (x, y) minus its start position; PushT
    real_psnr: torch.Tensor | None = None  # [N_start, horizon] dB against the real clip; "true" only


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


def default_horizon(wm: Any, num_context: int) -> int:
    """New frames that make the rollout two DiT windows long, so the atlas shows the slide into window two."""
    return 2 * wm.config.num_frames - num_context


def atlas_clips(dataset: Any, length: int, count: int) -> torch.Tensor | None:
    """Up to `count` clips [N, length, C, H, W] of `length` frames, spread over the episodes of `dataset` (a
    cola_train ClipDataset, e.g. the held-out split); None when no episode is that long."""
    from cola_train.data import ClipDataset

    if length < 2 or count < 1:
        raise ValueError(f"atlas clips need length >= 2 and count >= 1, got {length} and {count}")
    try:
        with (
            warnings.catch_warnings()
        ):  # episodes shorter than the atlas clip are expected; skip them quietly
            warnings.simplefilter("ignore")
            long = ClipDataset(dataset.episodes, length, frame_skip=dataset.frame_skip, size=dataset.size)
    except ValueError:
        return None
    count = min(count, len(long))
    picks = sorted({round(i * (len(long) - 1) / max(count - 1, 1)) for i in range(count)})
    return torch.stack([long[i]["video"] for i in picks])


def _scored(entry: AtlasEntry, num_context: int, pusht: bool, real: torch.Tensor | None) -> AtlasEntry:
    """The entry with its static PSNR, agent displacement (PushT) and PSNR against `real` (when given)."""
    frames, k = entry.frames, num_context
    predicted = frames[:, k:]
    start = frames[:, k - 1 : k].expand_as(predicted)
    if pusht:
        agent = agent_mask(frames)
        keep = ~(agent[:, k:] | agent[:, k - 1 : k])
        positions = agent_positions(frames)
        entry.displacement = positions - positions[:, k - 1 : k]
    else:
        keep = torch.ones(predicted.shape[:2] + predicted.shape[-2:], dtype=torch.bool)
    entry.static_psnr = masked_psnr(predicted, start, keep).clamp(max=PSNR_CEILING)
    if real is not None:
        entry.real_psnr = psnr(predicted, real[:, k:])
    return entry


@torch.no_grad()
def code_atlas(
    lam: Any,
    wm: Any,
    context: torch.Tensor,
    usage: CodebookUsage,
    horizon: int | None = None,
    num_top: int = 8,
    num_rare: int = 2,
    steps: int = 10,
    guidance_scale: float | None = None,
    seed: int = 0,
    real: torch.Tensor | None = None,
    pusht: bool = False,
) -> list[AtlasEntry]:
    """Roll out every chosen action (pick_atlas_actions) from every start clip ``context [N, k, C, H, W]``
    for `horizon` new frames (default: two DiT windows in all), the action repeated at every transition; every
    row is sampled with the same noise (seed). ``real [N, k + horizon, C, H, W]``, held-out clips that begin
    with `context`, adds the "real" and "true" rows; `pusht` (the frames show PushT's blue agent) adds the
    agent displacement and leaves the agent out of the static PSNR."""
    from cola_wm import sample

    if not isinstance(context, torch.Tensor) or context.dim() != 5 or context.shape[0] == 0:
        got = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
        raise ValueError(f"context must be a non-empty batch of frames [N, k, C, H, W], got {got}")
    n, k = context.shape[:2]
    horizon = default_horizon(wm, k) if horizon is None else horizon
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    total = k + horizon
    if real is not None:
        if tuple(real.shape) != (n, total, *context.shape[2:]):
            raise ValueError(
                "real must be the held-out clips [N, k + horizon, C, H, W] = "
                f"{[n, total, *context.shape[2:]]}, got {tuple(real.shape)}"
            )
        if not torch.equal(real[:, :k].cpu(), context.cpu()):
            raise ValueError("real must begin with the context frames: the atlas rolls out from them")
    chosen = pick_atlas_actions(usage, num_top, num_rare)
    device = next(wm.parameters()).device
    lam_device = next(lam.parameters()).device
    context = context.to(device)

    def roll(actions: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator(device=device).manual_seed(seed)  # the same noise for every row
        video = sample(
            wm,
            context,
            actions.to(device, context.dtype),
            num_frames=total,
            steps=steps,
            guidance_scale=guidance_scale,
            generator=generator,
        )
        return video.clamp(-1, 1).cpu()

    entries = []
    if real is not None:
        real = real.cpu()
        entries.append(_scored(AtlasEntry(None, None, "real", real), k, pusht, None))
        inferred = latent_actions(lam, real.to(lam_device), "inferred")
        entries.append(_scored(AtlasEntry(None, None, "true", roll(inferred)), k, pusht, real))
    for action, share, kind in chosen:
        latent = lam.embed(torch.tensor([action], device=lam_device)).flatten(-2)  # [1, action_dim]
        frames = roll(latent[:, None].expand(n, total - 1, -1))
        entry = AtlasEntry(action, share, kind, frames, uses=usage.action_counts[action])
        entries.append(_scored(entry, k, pusht, None))
    return entries


def _curve(values: torch.Tensor) -> dict[str, Any]:
    """Per step, the mean over start frames of ``values [N, steps]``, with N."""
    return {"value": torch.nanmean(values.double(), dim=0).tolist(), "n": int(values.shape[0])}


def _row_summary(entry: AtlasEntry, num_context: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": entry.kind,
        "action": None if entry.action is None else list(entry.action),
        "share": entry.share,
        "transitions": entry.uses,
        "static_psnr": metric(float(torch.nanmean(entry.static_psnr.double())), entry.static_psnr.numel()),
        "static_psnr_curve": _curve(entry.static_psnr),
    }
    if entry.displacement is None:
        row["agent_displacement"] = metric(None, 0, NO_AGENT)
        row["agent_distance"] = metric(None, 0, NO_AGENT)
    else:
        final = entry.displacement[:, -1]
        row["agent_displacement"] = {"value": final.mean(0).tolist(), "n": int(final.shape[0])}
        row["agent_distance"] = metric(float(final.norm(dim=-1).mean()), final.shape[0])
        row["agent_distance_curve"] = _curve(entry.displacement[:, num_context:].norm(dim=-1))
    if entry.real_psnr is not None:
        row["psnr"] = metric(float(entry.real_psnr.mean()), entry.real_psnr.numel())
        row["psnr_curve"] = _curve(entry.real_psnr)
    return row


def code_separation(entries: list[AtlasEntry]) -> dict[str, Any]:
    """How differently the codes move the agent: the mean distance in frame px between the final agent
    positions of every two code rows ("top" and "rare") from one start frame, with the number of pairs."""
    codes = [
        e.displacement[:, -1] for e in entries if e.kind in ("top", "rare") and e.displacement is not None
    ]
    if len(codes) < 2:
        return metric(None, 0, NO_AGENT if not codes else "fewer than two code rows")
    distances = torch.stack([(a - b).norm(dim=-1) for a, b in itertools.combinations(codes, 2)])
    return metric(float(distances.mean()), distances.numel())


def _num_context(entries: list[AtlasEntry]) -> int:
    """The context frames of scored entries (code_atlas's), each row's frames minus its predicted ones."""
    if not entries or any(e.static_psnr is None for e in entries):
        raise ValueError("the atlas needs the scored entries code_atlas returns (at least one)")
    return int(entries[0].frames.shape[1] - entries[0].static_psnr.shape[1])


def atlas_summary(entries: list[AtlasEntry], window: int | None = None) -> dict[str, Any]:
    """The atlas's numbers for report.json: its shape, every row's scores (metric entries with counts; curves
    hold one mean per predicted frame) and the code separation."""
    k = _num_context(entries)
    n, total = entries[0].frames.shape[:2]
    return {
        "start_frames": int(n),
        "num_context": k,
        "horizon": int(total - k),
        "window": window,
        "rows": [_row_summary(e, k) for e in entries],
        "code_separation_px": code_separation(entries),
    }


def _label(entry: AtlasEntry) -> str:
    if entry.kind in ("real", "true"):
        lines = ["real clip" if entry.kind == "real" else "true actions (IDM)"]
    else:
        codes = ",".join(str(c) for c in entry.action or ())
        lines = [f"codes ({codes}) {entry.kind}", f"share {entry.share:.1%}"]
    if entry.displacement is not None:
        dx, dy = entry.displacement[:, -1].mean(0).tolist()
        lines.append(f"move {dx:+.1f},{dy:+.1f} px")
    if entry.static_psnr is not None:
        lines.append(f"static {float(torch.nanmean(entry.static_psnr.double())):.1f} dB")
    if entry.real_psnr is not None:
        lines.append(f"PSNR {float(entry.real_psnr.mean()):.1f} dB")
    return "\n".join(lines)


def _row(entry: AtlasEntry, t: int | None, scale: int, height: int) -> np.ndarray:
    """One labelled row `height` px high: per start frame either the time strip (t None) or frame t."""
    clips = []
    for clip in entry.frames:
        frames = np.pad(
            upscale(to_frames(clip), scale), ((0, 0), (0, 0), (0, FRAME_GAP), (0, 0)), constant_values=255
        )
        strip = np.concatenate(list(frames), axis=1) if t is None else frames[t]
        clips.append(np.pad(strip, ((0, 0), (0, CLIP_GAP), (0, 0)), constant_values=255))
    image = np.concatenate(clips, axis=1)
    below = height - 1 - image.shape[0]
    return labelled_row(
        _label(entry), np.pad(image, ((1, below), (0, 0), (0, 0)), constant_values=255), LABEL_WIDTH
    )


def _header(entries: list[AtlasEntry], cell: int, window: int | None) -> np.ndarray:
    """Frame numbers over every column: "ctx" on context frames, "wN" where sampling window N starts."""
    from PIL import Image, ImageDraw

    n, total = entries[0].frames.shape[:2]
    k = _num_context(entries)
    slides = range(window, total, window - k) if window is not None and window > k else range(0)
    starts = {t: number for number, t in enumerate(slides, start=2)}
    width = n * (total * cell + CLIP_GAP)
    panel = Image.new("RGB", (LABEL_WIDTH + width, HEADER_HEIGHT), "white")
    draw = ImageDraw.Draw(panel)
    draw.text((4, 2), "action \\ frame", fill="black")
    for clip in range(n):
        for t in range(total):
            tag = " ctx" if t < k else (f" w{starts[t]}" if t in starts else "")
            draw.text(
                (LABEL_WIDTH + clip * (total * cell + CLIP_GAP) + t * cell + 1, 2), f"{t}{tag}", fill="black"
            )
    return np.asarray(panel)


def _row_height(entries: list[AtlasEntry], scale: int) -> int:
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label = max(draw.multiline_textbbox((4, 4), _label(e))[3] + 4 for e in entries)
    return max(entries[0].frames.shape[-2] * scale, label) + 2


def write_atlas(
    entries: list[AtlasEntry],
    out_dir: str | Path,
    prefix: str = "",
    scale: int = 1,
    fps: float = 4.0,
    window: int | None = None,
) -> tuple[Path, Path]:
    """A PNG (a header of frame numbers, then one row per entry: its rollout over time per start frame,
    labelled with the action, its share, the agent's final displacement and the static PSNR) and a GIF (all
    rows animated). `window` (the DiT's num_frames) marks where each sliding window starts."""
    from PIL import Image

    _num_context(entries)  # ValueError unless the entries are code_atlas's
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    height = _row_height(entries, scale)
    cell = entries[0].frames.shape[-1] * scale + FRAME_GAP
    rows = [_header(entries, cell, window)] + [_row(e, None, scale, height) for e in entries]
    png = out_dir / f"{prefix}code_atlas.png"
    Image.fromarray(np.concatenate(rows, axis=0)).save(png)
    steps = entries[0].frames.shape[1]
    gif_frames = np.stack(
        [np.concatenate([_row(e, t, scale, height) for e in entries], axis=0) for t in range(steps)]
    )
    gif = write_gif(gif_frames, out_dir / f"{prefix}code_atlas.gif", fps=fps)
    return png, gif


def plot_atlas_curves(entries: list[AtlasEntry], path: str | Path, window: int | None = None) -> Path:
    """Static PSNR and (PushT) the agent's distance from its start over the horizon, one line per row, means
    over the start frames; dotted lines where a new sampling window starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = atlas_summary(entries, window)
    k, total = summary["num_context"], summary["num_context"] + summary["horizon"]
    panels = [("static_psnr_curve", "static PSNR vs start frame (dB)")]
    if entries[0].displacement is not None:
        panels.append(("agent_distance_curve", "agent distance from start (px)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for row in summary["rows"]:
            values = row[key]["value"]
            label = row["kind"] if row["action"] is None else f"{tuple(row['action'])} {row['kind']}"
            ax.plot(range(total - len(values), total), values, marker=".", label=label)
        if window is not None and window > k:
            for start in range(window, total, window - k):
                ax.axvline(start - 0.5, color="gray", linestyle=":")
        ax.set_xlabel("frame")
        ax.set_title(title, fontsize=9)
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
