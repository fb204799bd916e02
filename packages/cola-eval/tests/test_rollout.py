"""Rollouts, controllability, codebook health, atlas and probe on small random models and synthetic clips."""

import json
from collections import Counter

import pytest
import torch
from cola_eval.atlas import code_atlas, pick_atlas_actions, write_atlas
from cola_eval.batches import clip_batches
from cola_eval.codebook import CodebookUsage, codebook_usage, plot_training_curves, read_training_metrics
from cola_eval.probe import probe_latent_actions
from cola_eval.rollout import check_compatible, evaluate_rollouts, latent_actions
from cola_lam import LAMConfig, LatentActionModel
from cola_wm import ActionConditionedDiT, DiTConfig

SIZE, FRAMES = 16, 4


def _models(frame_size: int = SIZE):
    torch.manual_seed(0)
    lam = LatentActionModel(
        LAMConfig(frame_size=frame_size, patch_size=8, width=32, depth=1, heads=2, num_codes=8, code_dim=8)
    ).eval()
    wm = ActionConditionedDiT(
        DiTConfig.preset(
            "tiny",
            frame_size=frame_size,
            patch_size=8,
            width=32,
            depth=1,
            heads=2,
            num_frames=FRAMES,
            action_dim=16,
        )
    ).eval()
    return lam, wm


def _clips(n: int = 6, size: int = SIZE):
    g = torch.Generator().manual_seed(1)
    return [
        {
            "video": torch.rand(FRAMES, 3, size, size, generator=g) * 2 - 1,
            "actions": torch.rand(FRAMES, 4, generator=g) * 512,
            "episode": i,
            "start": 0,
        }
        for i in range(n)
    ]


def test_rollouts_score_every_source_with_counts_and_delta_psnr():
    lam, wm = _models()
    result = evaluate_rollouts(wm, lam, _clips(5), sources=("inferred", "random"), steps=2, batch_size=2)
    summary = result.summary()
    assert set(summary) == {"inferred", "random"}
    for scores in summary.values():
        assert scores["n_clips"] == 5 and scores["n_frames"] == 5 * (FRAMES - 1)
        assert torch.isfinite(torch.tensor([scores["psnr"], scores["ssim"]])).all()
    assert result.delta_psnr() == pytest.approx(summary["inferred"]["psnr"] - summary["random"]["psnr"])
    assert result.videos("inferred").shape == (5, FRAMES, 3, SIZE, SIZE)
    assert result.videos("inferred").dtype == torch.uint8
    again = evaluate_rollouts(wm, lam, _clips(5), sources=("inferred", "random"), steps=2, batch_size=2)
    assert again.summary() == summary  # seeded: the same numbers on a rerun


def test_latent_action_sources_have_the_world_model_width():
    lam, _ = _models()
    video = torch.stack([c["video"] for c in _clips(2)])
    for source in ("inferred", "random"):
        assert latent_actions(lam, video, source, generator=torch.Generator().manual_seed(0)).shape == (
            2,
            3,
            16,
        )
    with pytest.raises(ValueError, match="needs an adapter"):
        latent_actions(lam, video, "adapter")
    with pytest.raises(ValueError, match="unknown action source"):
        latent_actions(lam, video, "oracle")


def test_mismatched_frame_size_and_empty_set_are_clear_errors():
    lam, wm = _models()
    with pytest.raises(ValueError, match=r"built for 3x16x16 frames but the evaluation data has 3x32x32"):
        evaluate_rollouts(wm, lam, _clips(2, size=32), steps=1)
    with pytest.raises(ValueError, match="empty"):
        evaluate_rollouts(wm, lam, [], steps=1)
    with pytest.raises(ValueError, match="empty"):
        next(clip_batches([], 4))
    lam32, _ = _models(32)
    with pytest.raises(ValueError, match="LAM was built for"):
        check_compatible(lam32, wm, (3, SIZE, SIZE))


def test_codebook_usage_and_atlas(tmp_path):
    lam, wm = _models()
    usage = codebook_usage(lam, _clips(4), batch_size=3)
    health = usage.health()
    assert usage.num_transitions == 4 * (FRAMES - 1) == health["n_transitions"]
    assert health["n_tokens"] == 2 * usage.num_transitions
    assert 0 < health["utilization"] <= 1 and 0 < health["max_share"] <= 1
    assert sum(share for _, share in usage.ranked_actions()) == pytest.approx(1.0)

    counts = Counter({(0, 1): 50, (2, 2): 30, (3, 1): 15, (4, 4): 4, (5, 0): 1})
    planted = CodebookUsage(
        code_counts=torch.ones(8, dtype=torch.int64), action_counts=counts, num_transitions=100
    )
    chosen = pick_atlas_actions(planted, num_top=2, num_rare=2)
    assert [(a, kind) for a, _, kind in chosen] == [
        ((0, 1), "top"),
        ((2, 2), "top"),
        ((4, 4), "rare"),
        ((5, 0), "rare"),
    ]
    assert chosen[0][1] == pytest.approx(0.5)

    context = torch.stack([c["video"][:1] for c in _clips(2)])
    entries = code_atlas(lam, wm, context, planted, horizon=2, num_top=2, num_rare=1, steps=1)
    assert len(entries) == 3 and entries[0].frames.shape == (2, 3, 3, SIZE, SIZE)
    assert torch.equal(entries[0].frames[:, :1], context)  # each row starts from the same context
    png, gif = write_atlas(entries, tmp_path, scale=2)
    assert png.stat().st_size > 0 and gif.stat().st_size > 0


def test_training_curves_from_metrics_jsonl(tmp_path):
    records = [
        {
            "stage": "warmup",
            "step": i,
            "global_step": i,
            "loss": 1.0 / (i + 1),
            "utilization": 0.5,
            "perplexity": 4.0,
            "entropy": 1.3,
            "max_share": 0.3,
        }
        for i in range(5)
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    read = read_training_metrics(tmp_path)
    assert len(read) == 5
    [png] = plot_training_curves(read, tmp_path / "plots")
    assert png.suffix == ".png" and png.stat().st_size > 0
    (tmp_path / "metrics.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="corrupt"):
        read_training_metrics(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        read_training_metrics(tmp_path / "nowhere")


def test_probe_on_latent_actions_reports_counts():
    lam, _ = _models()
    result = probe_latent_actions(lam, _clips(6), _clips(3), batch_size=4)
    assert set(result) == {"embedding", "one_hot"}
    assert result["embedding"]["n_train"] == 6 * (FRAMES - 1) and result["one_hot"]["n_test"] == 3 * (
        FRAMES - 1
    )


def test_probe_predicts_only_the_chosen_action_columns():
    lam, _ = _models()
    train, test = _clips(6), _clips(3)
    chosen = probe_latent_actions(lam, train, test, batch_size=4, action_columns=[1])
    every = probe_latent_actions(lam, train, test, batch_size=4)
    assert chosen["embedding"]["mse"] != every["embedding"]["mse"]
    with pytest.raises(ValueError, match="action_columns"):
        probe_latent_actions(lam, train, test, batch_size=4, action_columns=[99])
