"""Held-out codebook health measures the geometry too: an IDM that gives every clip the same action is
flagged even when the codes it picks spread over the codebook."""

import math
from collections import Counter

import pytest
import torch
from cola_eval.codebook import CodebookUsage, codebook_usage
from cola_lam import LAMConfig, LatentActionModel, code_geometry

SIZE, FRAMES = 16, 4
GEOMETRY_KEYS = ("latent_spread", "latent_rank", "code_spread")


def _lam(l2_normalize: bool = False) -> LatentActionModel:
    torch.manual_seed(0)
    config = LAMConfig(
        frame_size=SIZE,
        patch_size=8,
        width=32,
        depth=1,
        heads=2,
        num_codes=8,
        code_dim=8,
        l2_normalize=l2_normalize,
    )
    return LatentActionModel(config).eval()


def _clips(n: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [{"video": torch.rand(FRAMES, 3, SIZE, SIZE, generator=generator) * 2 - 1} for _ in range(n)]


@pytest.mark.parametrize("l2_normalize", [False, True])
def test_usage_reports_the_geometry_of_the_idm_outputs(l2_normalize: bool) -> None:
    lam, clips = _lam(l2_normalize), _clips(5)
    usage = codebook_usage(lam, clips, batch_size=2)
    with torch.no_grad():
        outputs = lam.idm(torch.stack([clip["video"] for clip in clips])).flatten(0, -2)
    if l2_normalize:
        outputs = torch.nn.functional.normalize(outputs, dim=-1)
    expected = code_geometry(outputs, lam.quantizer.codes(), usage.code_counts > 0)
    assert usage.geometry.latent_spread == pytest.approx(expected.latent_spread, rel=1e-4)
    assert usage.geometry.latent_effective_rank == pytest.approx(expected.latent_effective_rank, rel=1e-4)
    assert usage.geometry.used_code_spread == pytest.approx(expected.used_code_spread, rel=1e-4)
    assert usage.geometry.n_used == expected.n_used
    assert usage.geometry.n_latents == 5 * (FRAMES - 1) * lam.config.tokens_per_action
    health = usage.health()
    assert health["latent_spread"] == usage.geometry.latent_spread
    assert health["latent_rank"] == usage.geometry.latent_effective_rank
    assert health["code_spread"] == usage.geometry.used_code_spread
    assert all(math.isfinite(health[key]) for key in GEOMETRY_KEYS)
    for key in ("utilization", "perplexity", "entropy", "max_share", "distinct_actions", "n_transitions"):
        assert key in health


def test_collapsed_idm_with_restarted_codes_is_flagged() -> None:
    lam, clips = _lam(), _clips(8)
    with torch.no_grad():  # every clip gets the same action (norm 1), up to ~1e-5
        lam.idm.head.weight.mul_(1e-4)
        lam.idm.head.bias.fill_(1 / math.sqrt(8))
        outputs = lam.idm(torch.stack([clip["video"] for clip in clips])).flatten(0, -2)
        # Dead-code restarts seed the codes from those outputs, so the picks spread over them.
        lam.quantizer.codebook.copy_(outputs[torch.randperm(outputs.shape[0])[:8]])
    health = codebook_usage(lam, clips, batch_size=4).health()
    assert health["utilization"] >= 0.5 and health["max_share"] <= 0.5
    assert health["latent_spread"] < 1e-3 and health["code_spread"] < 1e-2
    warnings = health["collapse_warnings"]
    assert any("latent_spread" in w for w in warnings) and any("code_spread" in w for w in warnings)
    assert not any(w.startswith(("utilization", "max_share")) for w in warnings)


def test_usage_without_geometry_keeps_the_count_health() -> None:
    usage = CodebookUsage(
        code_counts=torch.ones(8, dtype=torch.int64), action_counts=Counter({(0, 1): 3}), num_transitions=3
    )
    health = usage.health()
    assert usage.geometry is None and health["collapse_warnings"] == []
    assert not set(GEOMETRY_KEYS) & set(health)
