"""The code atlas on tiny random models: one row per code over two DiT windows, shared noise, PushT scores."""

from collections import Counter

import pytest
import torch
from cola_eval.atlas import (
    CLIP_GAP,
    FRAME_GAP,
    HEADER_HEIGHT,
    LABEL_WIDTH,
    PSNR_CEILING,
    atlas_summary,
    code_atlas,
    plot_atlas_curves,
    write_atlas,
)
from cola_eval.codebook import CodebookUsage, codebook_usage
from cola_lam import LAMConfig, LatentActionModel
from cola_wm import ActionConditionedDiT, DiTConfig
from PIL import Image

SIZE, WINDOW = 16, 4
# PushT's colours on the [0, 255] scale: the floor, the T block (LightSlateGray) and the agent (RoyalBlue).
WHITE, BLOCK, AGENT = (255, 255, 255), (119, 136, 153), (65, 105, 225)


def _models():
    torch.manual_seed(0)
    lam = LatentActionModel(
        LAMConfig(frame_size=SIZE, patch_size=8, width=32, depth=1, heads=2, num_codes=8, code_dim=8)
    ).eval()
    wm = ActionConditionedDiT(
        DiTConfig.preset(
            "tiny",
            frame_size=SIZE,
            patch_size=8,
            width=32,
            depth=1,
            heads=2,
            num_frames=WINDOW,
            action_dim=16,
        )
    ).eval()
    return lam, wm


def _usage(*actions: tuple[int, int]) -> CodebookUsage:
    counts = Counter({action: 10 * (len(actions) - i) for i, action in enumerate(actions)})
    return CodebookUsage(
        code_counts=torch.ones(8, dtype=torch.int64),
        action_counts=counts,
        num_transitions=sum(counts.values()),
    )


def colour(rgb: tuple[int, int, int]) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32)[:, None, None] / 127.5 - 1


def _pusht_clips(n: int, frames: int) -> torch.Tensor:
    """[n, frames, 3, SIZE, SIZE] in [-1, 1]: a still block and a 2x2 agent moving one px right per frame."""
    video = colour(WHITE).expand(n, frames, 3, SIZE, SIZE).clone()
    video[..., 9:12, 2:7] = colour(BLOCK)
    for t in range(frames):
        for i in range(n):
            video[i, t, :, 2 + i : 4 + i, 2 + t : 4 + t] = colour(AGENT)
    return video


def test_rows_differ_by_the_action_alone_over_two_windows():
    lam, wm = _models()
    with (
        torch.no_grad()
    ):  # a backbone whose output depends on the noise, beside action paths that output zero
        for name, param in wm.named_parameters():
            if not name.startswith("action_conditioner."):
                param.add_(torch.randn_like(param) * 0.05)
    context = torch.rand(2, 1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    usage = _usage((0, 1), (2, 2), (3, 5))
    entries = code_atlas(lam, wm, context, usage, num_top=3, num_rare=0, steps=1)
    assert [e.action for e in entries] == [(0, 1), (2, 2), (3, 5)] and {e.kind for e in entries} == {"top"}
    horizon = 2 * WINDOW - 1  # the default: two windows in all, so the rollout slides once
    for entry in entries:
        assert entry.frames.shape == (2, 1 + horizon, 3, SIZE, SIZE) and entry.frames.shape[1] > WINDOW
        assert torch.equal(entry.frames[:, :1], context)
        assert entry.static_psnr.shape == (2, horizon) and entry.displacement is None
    # The action paths output zero, so with shared noise every row is the same rollout ...
    assert all(torch.equal(entries[0].frames, e.frames) for e in entries[1:])
    other_noise = code_atlas(lam, wm, context, usage, num_top=1, num_rare=0, steps=1, seed=1)
    assert not torch.equal(other_noise[0].frames, entries[0].frames)  # (the noise does matter)
    # ... and once the actions act, rows part.
    for head in (wm.action_conditioner.to_modulation, wm.action_conditioner.to_tokens):
        if head is not None:
            torch.nn.init.normal_(head[-1].weight if isinstance(head, torch.nn.Sequential) else head.weight)
    steered = code_atlas(lam, wm, context, usage, num_top=3, num_rare=0, steps=1)
    assert not torch.equal(steered[0].frames, steered[1].frames)
    again = code_atlas(lam, wm, context, usage, num_top=3, num_rare=0, steps=1)
    assert torch.equal(again[1].frames, steered[1].frames)  # seeded


def test_pusht_atlas_scores_rows_and_writes_the_grid(tmp_path):
    lam, wm = _models()
    horizon, n = 6, 2
    real = _pusht_clips(n, 1 + horizon)
    usage = codebook_usage(lam, [{"video": clip} for clip in real], batch_size=2)
    top = min(3, len(usage.action_counts))
    entries = code_atlas(
        lam, wm, real[:, :1], usage, horizon=horizon, num_top=top, num_rare=0, steps=1, real=real, pusht=True
    )
    assert [e.kind for e in entries] == ["real", "true", *["top"] * top]
    real_row, true_row = entries[:2]
    assert torch.equal(real_row.frames, real)
    assert torch.allclose(real_row.displacement[:, -1], torch.tensor([[float(horizon), 0.0]] * n), atol=1e-4)
    # Only the agent moves in the real clip: the static scene is untouched (capped PSNR).
    assert torch.all(real_row.static_psnr == PSNR_CEILING)
    assert true_row.real_psnr.shape == (n, horizon) and real_row.real_psnr is None

    summary = atlas_summary(entries, window=WINDOW)
    assert (summary["start_frames"], summary["num_context"], summary["horizon"]) == (n, 1, horizon)
    rows = summary["rows"]
    assert len(rows) == 2 + top and rows[0]["agent_displacement"]["value"] == pytest.approx([horizon, 0.0])
    for row in rows:
        assert row["static_psnr"]["n"] == n * horizon and len(row["static_psnr_curve"]["value"]) == horizon
        assert row["agent_distance"]["n"] == n and len(row["agent_distance_curve"]["value"]) == horizon
    assert rows[1]["psnr"]["n"] == n * horizon and "psnr" not in rows[2]
    code_rows = rows[2:]
    assert all(r["share"] > 0 and r["transitions"] > 0 for r in code_rows)
    pairs = top * (top - 1) // 2
    separation = summary["code_separation_px"]
    assert separation["n"] == n * pairs and (pairs == 0 or separation["value"] >= 0)

    scale = 5
    png, gif = write_atlas(entries, tmp_path, prefix="x_", scale=scale, window=WINDOW)
    width = LABEL_WIDTH + n * ((1 + horizon) * (SIZE * scale + FRAME_GAP) + CLIP_GAP)
    height = HEADER_HEIGHT + len(entries) * (SIZE * scale + 2)  # rows as tall as the frames, plus 2 px
    assert Image.open(png).size == (width, height)
    assert gif.stat().st_size > 0
    curves = plot_atlas_curves(entries, tmp_path / "curves.png", window=WINDOW)
    assert curves.stat().st_size > 0


def test_bad_atlas_input_is_a_clear_error():
    lam, wm = _models()
    usage = _usage((0, 1))
    real = _pusht_clips(1, 4)
    with pytest.raises(ValueError, match=r"context must be a non-empty batch"):
        code_atlas(lam, wm, real[0], usage, steps=1)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        code_atlas(lam, wm, real[:, :1], usage, horizon=0, steps=1)
    with pytest.raises(ValueError, match=r"real must be the held-out clips"):
        code_atlas(lam, wm, real[:, :1], usage, horizon=5, steps=1, real=real)
    with pytest.raises(ValueError, match="real must begin with the context"):
        code_atlas(lam, wm, -real[:, :1], usage, horizon=3, steps=1, real=real)
    with pytest.raises(ValueError, match="codebook usage is empty"):
        code_atlas(lam, wm, real[:, :1], _usage(), steps=1)
    with pytest.raises(ValueError, match="scored entries"):
        atlas_summary([])
