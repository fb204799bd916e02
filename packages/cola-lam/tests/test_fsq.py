import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from cola_lam import FiniteScalarQuantizer, LAMConfig, LatentActionModel, code_geometry
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=3),
    levels=st.lists(st.integers(2, 7), min_size=1, max_size=4),
    code_dim=st.integers(1, 12),
    scale=st.floats(0.01, 100.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_output_is_the_grid_point_of_its_index(shape, levels, code_dim, scale, seed):
    torch.manual_seed(seed)
    fsq = FiniteScalarQuantizer(levels, code_dim).eval()
    z = scale * torch.randn(*shape, code_dim)
    out = fsq(z)
    assert fsq.num_codes == math.prod(levels)
    assert out.quantized.shape == z.shape
    assert out.indices.shape == z.shape[:-1] and out.indices.dtype == torch.int64
    assert ((out.indices >= 0) & (out.indices < fsq.num_codes)).all()
    assert torch.allclose(out.quantized, fsq.embed(out.indices), atol=1e-5, rtol=1e-5)
    assert torch.allclose(out.quantized, fsq.codes()[out.indices], atol=1e-5, rtol=1e-5)
    # Each index names the level nearest to the bounded projection.
    half = (torch.tensor(levels, dtype=torch.float32) - 1) / 2
    bounded = half * torch.tanh(fsq.project_in(z.reshape(-1, code_dim))) + half
    nearest = (bounded - (fsq._scalars(out.indices.reshape(-1)) + 1) * half).abs()
    assert (nearest <= 0.5 + 1e-4).all()
    assert out.usage.tolist() == torch.bincount(out.indices.reshape(-1), minlength=fsq.num_codes).tolist()
    assert out.loss.item() == 0.0


def test_grid_lists_every_code_once_inside_minus_one_one():
    fsq = FiniteScalarQuantizer((3, 2, 4), code_dim=5)
    grid = fsq.grid()
    assert grid.shape == (24, 3)
    assert len({tuple(row.tolist()) for row in grid}) == 24
    assert grid.min() == -1 and grid.max() == 1
    assert sorted(set(grid[:, 0].tolist())) == [-1.0, 0.0, 1.0]
    assert sorted(set(grid[:, 1].tolist())) == [-1.0, 1.0]
    # Scalar 0 varies fastest.
    assert grid[:3, 0].tolist() == [-1.0, 0.0, 1.0] and grid[:3, 1].tolist() == [-1.0, -1.0, -1.0]


def test_straight_through_gradient_reaches_the_input_and_both_projections():
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer((8, 4), code_dim=6)
    z = torch.randn(32, 6, requires_grad=True)
    fsq(z).quantized.pow(2).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert fsq.project_in.weight.grad.abs().sum() > 0
    assert fsq.project_out.weight.grad.abs().sum() > 0


def test_training_remembers_recent_inputs_for_the_collapse_guard():
    fsq = FiniteScalarQuantizer((4, 4), code_dim=3, restart_buffer_size=8)
    z = torch.randn(5, 3)
    fsq.eval()(z)
    assert int(fsq.recent_count) == 0
    fsq.train()(z)
    fsq(torch.randn(6, 3))
    assert int(fsq.recent_count) == 8
    geometry = code_geometry(fsq.recent_inputs, fsq.codes().detach(), torch.arange(16))
    assert geometry.n_used == 16 and geometry.used_code_spread > 0


def test_embed_rejects_bad_indices():
    fsq = FiniteScalarQuantizer((2, 2), code_dim=3)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        fsq.embed(torch.tensor([4]))
    with pytest.raises(ValueError, match="integer"):
        fsq.embed(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="levels"):
        FiniteScalarQuantizer((1, 4), code_dim=3)


def test_config_checks_the_grid_against_num_codes_and_vq_options():
    config = LAMConfig(quantizer="fsq", fsq_levels=(8, 4), num_codes=32)
    assert config.fsq_levels == (8, 4)
    with pytest.raises(ValueError, match="num_codes=12"):
        LAMConfig(quantizer="fsq", fsq_levels=(4, 3), num_codes=32)
    with pytest.raises(ValueError, match="use_ema"):
        LAMConfig(quantizer="fsq", use_ema=True)
    with pytest.raises(ValueError, match="quantizer"):
        LAMConfig(quantizer="lfq")
    with pytest.raises(ValueError, match="fsq_levels"):
        LAMConfig(quantizer="fsq", fsq_levels=())
    # A config read back from JSON carries a list.
    restored = LAMConfig(**json.loads(json.dumps(dataclasses.asdict(config))))
    assert restored == config
    # The VQ's restart period is harmless with a grid (the quickstart preset sets it).
    assert LAMConfig(quantizer="fsq", dead_code_steps=10).quantizer == "fsq"


def _keypoint_lam(**overrides) -> LatentActionModel:
    config = LAMConfig(
        frame_size=32,
        idm_backbone="keypoints",
        keypoints=4,
        keypoint_channels=8,
        width=32,
        code_dim=8,
        quantizer="fsq",
        fsq_levels=(4, 2),
        num_codes=8,
        **overrides,
    )
    return LatentActionModel(config)


@pytest.mark.parametrize("bound", ["tanh", "uniform"])
def test_a_fsq_lam_encodes_embeds_and_round_trips_through_save_pretrained(tmp_path: Path, bound: str):
    torch.manual_seed(0)
    lam = _keypoint_lam(fsq_bound=bound)
    video = torch.rand(3, 4, 3, 32, 32) * 2 - 1
    lam.initialize_codebook(video)  # a fixed grid: nothing to place, no error
    lam.train()
    out = lam.encode(video)
    assert out.quantized.shape == (3, 3, 2, 8) and out.indices.shape == (3, 3, 2)
    out.quantized.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lam.idm.parameters())
    lam.eval()
    # In evaluation the uniform bound standardises with running statistics, so its picks can differ from
    # training's; each output is still the grid point of its index.
    evaluated = lam.encode(video)
    assert torch.allclose(lam.embed(evaluated.indices), evaluated.quantized, atol=1e-5)
    if bound == "tanh":
        assert torch.equal(evaluated.indices, out.indices)
    lam.save_pretrained(tmp_path / "lam")
    loaded = LatentActionModel.from_pretrained(tmp_path / "lam").eval()
    assert loaded.config == lam.config
    assert torch.equal(loaded.encode(video).indices, lam.encode(video).indices)
    assert int(loaded.quantizer.recent_count) == int(lam.quantizer.recent_count) > 0
    if bound == "uniform":
        assert torch.equal(loaded.quantizer.standardize.running_var, lam.quantizer.standardize.running_var)


@settings(max_examples=15, deadline=None)
@given(
    levels=st.lists(st.integers(2, 6), min_size=1, max_size=3),
    scale=st.floats(0.1, 100.0),
    offset=st.floats(-50.0, 50.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_uniform_bound_picks_every_level_about_equally_whatever_the_scale(levels, scale, offset, seed):
    torch.manual_seed(seed)
    fsq = FiniteScalarQuantizer(levels, code_dim=4, bound="uniform").train()
    z = offset + scale * torch.randn(6000, 4)
    out = fsq(z)
    steps = (out.indices[:, None] // fsq.radix) % fsq.level_counts
    for axis, count in enumerate(levels):
        shares = torch.bincount(steps[:, axis], minlength=count).float() / len(z)
        assert (shares - 1 / count).abs().max() < 0.04, (axis, shares)
    # The grid point of its index, in training and (running statistics) in evaluation.
    assert torch.allclose(out.quantized, fsq.embed(out.indices), atol=1e-5)
    fsq.eval()
    assert torch.allclose(fsq(z).quantized, fsq.embed(fsq(z).indices), atol=1e-5)


def test_tanh_bound_piles_a_grown_projection_on_the_grid_edges_and_uniform_does_not():
    torch.manual_seed(0)
    z = 10 * torch.randn(4000, 4)
    shares = {}
    for bound in ("tanh", "uniform"):
        fsq = FiniteScalarQuantizer((4, 4), code_dim=4, bound=bound).train()
        picks = torch.bincount(fsq(z).indices, minlength=16).float() / len(z)
        shares[bound] = picks[[0, 3, 12, 15]].sum().item()
    assert shares["tanh"] > 0.6 and abs(shares["uniform"] - 0.25) < 0.05


def test_uniform_bound_gradient_and_bad_options():
    torch.manual_seed(0)
    fsq = FiniteScalarQuantizer((4, 4), code_dim=6, bound="uniform")
    z = torch.randn(32, 6, requires_grad=True)
    fsq(z).quantized.pow(2).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 2 vectors"):
        fsq(torch.randn(1, 6))
    with pytest.raises(ValueError, match="bound"):
        FiniteScalarQuantizer((4, 4), code_dim=6, bound="sigmoid")
    with pytest.raises(ValueError, match="fsq_bound"):
        LAMConfig(quantizer="fsq", fsq_levels=(4, 4), num_codes=16, fsq_bound="erf")
