"""Codebook geometry: a collapsed encoder is caught though dead-code restarts keep its index counts high."""

import math

import pytest
import torch
from cola_lam import (
    CodebookGeometry,
    code_geometry,
    codebook_stats,
    collapse_warnings,
)
from cola_lam.kernels import nearest_code
from cola_lam.stats import MIN_CODE_SPREAD, MIN_LATENT_SPREAD
from hypothesis import given, settings
from hypothesis import strategies as st


def _collapsed(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One output for every input (norm ~0.99) plus 3e-4 noise, codes restarted from those outputs."""
    generator = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(8, generator=generator), dim=0) * 0.99
    latents = direction + 3e-4 * torch.randn(512, 8, generator=generator)
    codebook = latents[torch.randperm(512, generator=generator)[:32]].clone()
    return latents, codebook


def _healthy(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents in 32 well separated clusters, one code at each centre."""
    generator = torch.Generator().manual_seed(seed)
    codebook = torch.randn(32, 8, generator=generator)
    latents = codebook.repeat(16, 1) + 0.05 * torch.randn(512, 8, generator=generator)
    return latents, codebook


def test_collapsed_outputs_fool_the_counts_but_not_the_geometry() -> None:
    latents, codebook = _collapsed()
    indices, _ = nearest_code(latents, codebook)
    stats = codebook_stats(indices, 32)
    assert stats.utilization >= 0.75 and collapse_warnings(stats) == []
    geometry = code_geometry(latents, codebook, indices)
    assert geometry.latent_spread < 1e-3 and geometry.used_code_spread < 1e-2
    assert geometry.n_used == int((torch.bincount(indices, minlength=32) > 0).sum())
    assert geometry.n_latents == 512
    warnings = collapse_warnings(stats, geometry)
    assert any("latent_spread" in w for w in warnings)
    assert any("code_spread" in w for w in warnings)


def test_healthy_spread_gives_no_warning() -> None:
    latents, codebook = _healthy()
    indices, _ = nearest_code(latents, codebook)
    geometry = code_geometry(latents, codebook, indices)
    assert geometry.latent_spread > 10 * MIN_LATENT_SPREAD
    assert geometry.used_code_spread > 2 * MIN_CODE_SPREAD
    assert geometry.n_used == 32
    assert collapse_warnings(codebook_stats(indices, 32), geometry) == []


def test_used_as_mask_equals_used_as_indices() -> None:
    latents, codebook = _healthy()
    indices = torch.tensor([[0, 3], [3, 7]])
    mask = torch.zeros(32, dtype=torch.bool)
    mask[[0, 3, 7]] = True
    assert code_geometry(latents, codebook, indices) == code_geometry(latents, codebook, mask)
    assert code_geometry(latents, codebook, mask).n_used == 3


def test_effective_rank_of_isotropic_and_rank_one_latents() -> None:
    generator = torch.Generator().manual_seed(0)
    codebook = torch.randn(4, 16, generator=generator)
    isotropic = torch.randn(8192, 16, generator=generator)
    assert code_geometry(isotropic, codebook, torch.arange(4)).latent_effective_rank > 15.5
    rank_one = torch.randn(512, 1, generator=generator) * torch.randn(1, 16, generator=generator) + 3.0
    rank = code_geometry(rank_one, codebook, torch.arange(4)).latent_effective_rank
    assert rank == pytest.approx(1, abs=1e-3)


def test_spreads_against_hand_computed_values() -> None:
    # Latents +-1 along x around (0, 2): distance 1 from the mean, RMS norm sqrt(5).
    latents = torch.tensor([[1.0, 2.0], [-1.0, 2.0]])
    # Used codes at norm 2, 2, 4 (median 2); nearest distances 2*sqrt(2), 2, 2 (median 2).
    codebook = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 4.0], [50.0, 50.0]])
    geometry = code_geometry(latents, codebook, torch.tensor([0, 1, 2]))
    assert geometry.latent_spread == pytest.approx(1 / math.sqrt(5))
    assert geometry.latent_effective_rank == pytest.approx(1.0)
    assert geometry.used_code_spread == pytest.approx(1.0)
    assert geometry.n_used == 3


def test_edge_cases_give_numbers_not_nan() -> None:
    codebook = torch.randn(4, 3)
    one = code_geometry(torch.ones(1, 3), codebook, torch.tensor([2]))
    assert one == CodebookGeometry(0.0, 0.0, 0.0, 1, 1)
    zeros = code_geometry(torch.zeros(5, 3), torch.zeros(4, 3), torch.arange(4))
    assert zeros == CodebookGeometry(0.0, 0.0, 0.0, 4, 5)
    stats = codebook_stats(torch.arange(4), 4)
    # A single latent says nothing about spread; a single used code is a collapse.
    warnings = collapse_warnings(stats, one)
    assert len(warnings) == 1 and "fewer than two codes" in warnings[0]
    # Most used codes at the origin: median norm and median nearest distance are both 0.
    origin = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    assert code_geometry(torch.randn(6, 2), origin, torch.arange(3)).used_code_spread == 0.0


@settings(max_examples=30, deadline=None)
@given(
    scale=st.floats(min_value=1e-3, max_value=1e3),
    seed=st.integers(min_value=0, max_value=2**16),
    collapsed=st.booleans(),
)
def test_geometry_is_scale_invariant(scale: float, seed: int, collapsed: bool) -> None:
    latents, codebook = _collapsed(seed) if collapsed else _healthy(seed)
    # float64, so that scaling does not round away the 3e-4 spread of the collapsed case.
    latents, codebook = latents.double(), codebook.double()
    used = torch.arange(0, 32, 2)
    base = code_geometry(latents, codebook, used)
    scaled = code_geometry(latents * scale, codebook * scale, used)
    assert scaled.latent_spread == pytest.approx(base.latent_spread, rel=1e-6, abs=1e-12)
    assert scaled.latent_effective_rank == pytest.approx(base.latent_effective_rank, rel=1e-6)
    assert scaled.used_code_spread == pytest.approx(base.used_code_spread, rel=1e-6, abs=1e-12)
    assert scaled.n_used == base.n_used == 16


@pytest.mark.parametrize(
    ("latents", "codebook", "used", "message"),
    [
        (torch.randn(4), torch.randn(8, 4), torch.arange(2), "latents must be"),
        (torch.randn(0, 4), torch.randn(8, 4), torch.arange(2), "latents must be"),
        (torch.randn(5, 4), torch.randn(8), torch.arange(2), "codebook must be"),
        (torch.randn(5, 4), torch.randn(8, 3), torch.arange(2), "share code_dim"),
        (torch.randn(5, 4), torch.randn(8, 4), torch.tensor([0.0, 1.0]), "bool mask"),
        (torch.randn(5, 4), torch.randn(8, 4), torch.ones(7, dtype=torch.bool), r"shape \[8\]"),
        (torch.randn(5, 4), torch.randn(8, 4), torch.tensor([0, 8]), r"\[0, 8\)"),
        (torch.full((5, 4), math.nan), torch.randn(8, 4), torch.arange(2), "finite"),
    ],
)
def test_bad_input_raises(latents, codebook, used, message) -> None:
    with pytest.raises(ValueError, match=message):
        code_geometry(latents, codebook, used)
