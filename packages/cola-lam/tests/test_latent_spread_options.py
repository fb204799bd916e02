"""The LAM options against a collapsed IDM: the variance floor, the decorrelation penalty, the
frame-difference input and the patch-change readout."""

import pytest
import torch
from cola_lam import LAMConfig, LatentActionModel
from cola_lam.model import VARIANCE_EPS
from hypothesis import given, settings
from hypothesis import strategies as st

SMALL = {"width": 32, "depth": 2, "heads": 2, "decoder_depth": 1, "frame_size": 32, "restart_buffer_size": 64}


def video(batch=4, frames=3, seed=0):
    return torch.rand(batch, frames, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@settings(max_examples=25, deadline=None)
@given(
    floor=st.floats(0.01, 2.0),
    scale=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**16),
)
def test_variance_hinge_is_the_shortfall_of_each_std(floor, scale, seed):
    lam = LatentActionModel(LAMConfig.preset("tiny", **SMALL, variance_floor=floor))
    latents = scale * torch.randn(8, 2, 2, 32, generator=torch.Generator().manual_seed(seed))
    hinge = lam.variance_hinge(latents)
    std = (latents.reshape(-1, 2, 32).var(dim=0) + VARIANCE_EPS).sqrt()
    assert hinge >= 0
    assert torch.allclose(hinge, torch.relu(floor - std).mean())
    if bool((std >= floor).all()):
        assert hinge == 0


def test_variance_floor_is_in_the_training_loss_and_pushes_latents_apart():
    torch.manual_seed(0)
    floored = LatentActionModel(LAMConfig.preset("tiny", **SMALL, variance_floor=0.5)).train()
    plain = LatentActionModel(LAMConfig.preset("tiny", **SMALL)).train()
    plain.load_state_dict(floored.state_dict())
    clips = video()
    # A fresh IDM gives almost the same latent for every clip, so the hinge is close to the floor.
    extra = (floored.encode(clips).loss - plain.encode(clips).loss).detach()
    assert 0.4 < extra.item() <= 0.5
    assert floored.eval().encode(clips).loss.item() == pytest.approx(plain.eval().encode(clips).loss.item())

    floored.train()
    optimizer = torch.optim.Adam(floored.idm.parameters(), lr=1e-3)
    before = floored.idm(clips).detach().reshape(-1, 2, 32).std(0).mean()
    for _ in range(20):
        optimizer.zero_grad()
        floored.variance_hinge(floored.idm(clips)).backward()
        optimizer.step()
    after = floored.idm(clips).detach().reshape(-1, 2, 32).std(0).mean()
    assert after > 10 * before


def test_variance_hinge_pulls_a_collapsed_idm_apart():
    """At a spread of 1e-4 (a fresh IDM's), the hinge's gradient still points each latent away from the mean
    with a size that does not depend on how small the spread is."""
    lam = LatentActionModel(LAMConfig.preset("tiny", **SMALL, variance_floor=0.1))
    base = torch.randn(1, 1, 2, 32).expand(16, 1, 2, 32)
    for spread in (1e-2, 1e-4):
        offsets = spread * torch.randn(16, 1, 2, 32, generator=torch.Generator().manual_seed(0))
        latents = (base + offsets).requires_grad_()
        lam.variance_hinge(latents).backward()
        outward = -(latents.grad * (offsets - offsets.mean(0))).sum() / (offsets - offsets.mean(0)).norm()
        assert outward > 0.9 * latents.grad.norm()
        assert latents.grad.norm() > 1e-3


def test_variance_hinge_of_one_transition_is_zero():
    lam = LatentActionModel(LAMConfig.preset("tiny", **SMALL, variance_floor=1.0))
    assert lam.variance_hinge(torch.randn(1, 1, 2, 32)) == 0


def test_difference_input_shows_the_idm_the_change():
    torch.manual_seed(0)
    difference = LatentActionModel(LAMConfig.preset("tiny", **SMALL, idm_input="difference")).eval()
    pair = LatentActionModel(LAMConfig.preset("tiny", **SMALL)).eval()
    pair.load_state_dict(difference.state_dict())
    clips = video(frames=4)
    change = torch.cat([clips[:, :1], clips[:, 1:] - clips[:, :-1]], dim=1)
    # The pair model on (frame t, change) at every transition is what the difference model sees.
    for i in range(3):
        expected = pair.idm(torch.stack([clips[:, i], change[:, i + 1]], dim=1))
        assert torch.allclose(difference.idm(clips)[:, i : i + 1], expected, atol=1e-5)
    static = clips[:, :1].expand(-1, 3, -1, -1, -1)
    blank = torch.stack([clips[:, 0], torch.zeros_like(clips[:, 0])], dim=1)
    assert torch.allclose(difference.idm(static)[:, :1], pair.idm(blank), atol=1e-5)


def test_change_readout_adds_the_mean_patch_change_to_the_query_tokens():
    torch.manual_seed(0)
    change = LatentActionModel(LAMConfig.preset("tiny", **SMALL, idm_readout="query_plus_change")).eval()
    query = LatentActionModel(LAMConfig.preset("tiny", **SMALL)).eval()
    query.load_state_dict(change.state_dict())
    clips = video(batch=8, frames=3)
    captured = {}
    query.idm.norm.register_forward_hook(lambda module, args, out: captured.update(query=args[0]))
    change.idm.norm.register_forward_hook(lambda module, args, out: captured.update(change=args[0]))
    query.idm(clips), change.idm(clips)
    # The same weights, so the same blocks: the readouts differ by one vector per transition, shared by its
    # action tokens (the mean patch change).
    added = captured["change"] - captured["query"]
    assert added.abs().max() > 1e-3
    assert torch.allclose(added[:, :, 0], added[:, :, 1], atol=1e-6)

    # At initialisation the query tokens barely depend on the frames; the change readout does.
    def spread(lam):
        out = lam.idm(clips).flatten(0, 1)
        return (out - out.mean(0)).norm(dim=-1).mean() / out.norm(dim=-1).mean()

    assert spread(change) > 3 * spread(query)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), transitions=st.integers(2, 40))
def test_correlation_penalty_is_the_mean_squared_off_diagonal_correlation(seed, transitions):
    lam = LatentActionModel(LAMConfig.preset("tiny", **SMALL, decorrelation_weight=1.0))
    latents = torch.randn(
        transitions, 1, 2, 32, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    expected = []
    for token in range(2):
        correlation = torch.corrcoef(latents[:, 0, token].T)
        off = correlation - torch.diag(torch.diagonal(correlation))
        expected.append(off.pow(2).sum() / (32 * 31))
    assert torch.allclose(lam.correlation_penalty(latents), torch.stack(expected).mean().float(), atol=1e-5)


def test_correlation_penalty_is_one_on_a_line_and_small_for_independent_dimensions():
    lam = LatentActionModel(LAMConfig.preset("tiny", **SMALL, decorrelation_weight=1.0))
    generator = torch.Generator().manual_seed(0)
    scalar = torch.randn(256, 1, 2, 1, generator=generator)
    on_a_line = scalar * torch.randn(1, 1, 2, 32, generator=generator) + torch.randn(1, 1, 2, 32)
    assert lam.correlation_penalty(on_a_line) == pytest.approx(1.0, abs=1e-3)
    assert lam.correlation_penalty(torch.randn(256, 1, 2, 32, generator=generator)) < 2 / 256
    assert lam.correlation_penalty(torch.randn(1, 1, 2, 32)) == 0


def test_decorrelation_is_in_the_training_loss_only():
    torch.manual_seed(0)
    penalised = LatentActionModel(LAMConfig.preset("tiny", **SMALL, decorrelation_weight=2.0)).train()
    plain = LatentActionModel(LAMConfig.preset("tiny", **SMALL)).train()
    plain.load_state_dict(penalised.state_dict())
    clips = video()
    extra = (penalised.encode(clips).loss - plain.encode(clips).loss).detach()
    assert extra.item() == pytest.approx(
        2.0 * penalised.correlation_penalty(penalised.idm(clips)).item(), rel=1e-4
    )
    assert penalised.eval().encode(clips).loss.item() == pytest.approx(plain.eval().encode(clips).loss.item())
