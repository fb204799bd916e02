"""ActionAdapter: learns a planted action -> code mapping, looks codes up in the LAM's codebook."""

import math

import pytest
import torch
from cola_eval.adapter import (
    ActionAdapter,
    AdapterConfig,
    adapter_accuracy,
    fit_adapter,
    label_clips,
    train_adapter,
)
from cola_lam import LAMConfig, LatentActionModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def planted_codes(actions: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
    """Token 0: which of 8 direction sectors the delta points to; token 1: which of 4 speed bins it falls in,
    shifted by 4 when the frame's left half is bright (so it can only be read with the frame)."""
    angle = torch.atan2(actions[:, 1], actions[:, 0])
    sector = ((angle + math.pi) / (2 * math.pi) * 8).long().clamp(0, 7)
    speed = (actions.norm(dim=1) / 71.0 * 4).long().clamp(0, 3)
    if frames is not None:
        speed = speed + 4 * (frames[:, 0, :, :4].mean((-1, -2)) > 0).long()
    return torch.stack([sector, speed], dim=1)


def make_frames(count: int, generator: torch.Generator) -> torch.Tensor:
    frames = -torch.ones(count, 3, 8, 8)
    bright = torch.rand(count, generator=generator) < 0.5
    frames[bright, :, :, :4] = 1.0
    return frames


def test_learns_planted_mapping_from_actions():
    generator = torch.Generator().manual_seed(0)
    actions = torch.rand(4000, 2, generator=generator) * 100 - 50
    adapter = ActionAdapter(AdapterConfig(action_in=2, num_codes=8, code_dim=4, hidden=64))
    losses = fit_adapter(adapter, actions, planted_codes(actions), steps=400, batch_size=128, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0]
    held_out = torch.rand(2000, 2, generator=generator) * 100 - 50
    predicted = adapter.logits(held_out[:, None])[:, 0].argmax(-1)
    accuracy = (predicted == planted_codes(held_out)).float().mean().item()
    assert accuracy > 0.9, accuracy


def test_learns_frame_dependent_mapping_only_with_frames():
    generator = torch.Generator().manual_seed(1)
    actions = torch.rand(3000, 2, generator=generator) * 100 - 50
    frames = make_frames(3000, generator)
    targets = planted_codes(actions, frames)
    config = AdapterConfig(
        action_in=2, num_codes=8, code_dim=4, hidden=64, use_frames=True, frame_size=8, frame_features=16
    )
    adapter = ActionAdapter(config)
    fit_adapter(adapter, actions, targets, frames, steps=400, batch_size=128, lr=3e-3)
    held_actions = torch.rand(1000, 2, generator=generator) * 100 - 50
    held_frames = make_frames(1000, generator)
    predicted = adapter.logits(held_actions[:, None], held_frames[:, None])[:, 0].argmax(-1)
    speed_accuracy = (predicted[:, 1] == planted_codes(held_actions, held_frames)[:, 1]).float().mean().item()
    assert speed_accuracy > 0.85, speed_accuracy


def test_to_latent_looks_codes_up_in_codebook():
    adapter = ActionAdapter(AdapterConfig(action_in=2, num_codes=5, code_dim=3, hidden=16))
    adapter.codebook.copy_(torch.randn(5, 3))
    actions = torch.randn(2, 4, 2)
    latent = adapter.to_latent(actions)
    assert latent.shape == (2, 4, 2, 3)
    expected = adapter.codebook[adapter.logits(actions).argmax(-1)]
    assert torch.equal(latent, expected)


def test_hub_round_trip(tmp_path):
    adapter = ActionAdapter(
        AdapterConfig(action_in=2, num_codes=6, code_dim=4, hidden=16, action_columns=[0, 1])
    )
    adapter.codebook.copy_(torch.randn(6, 4))
    adapter.action_mean.fill_(3.0)
    adapter.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = ActionAdapter.from_pretrained(tmp_path)
    assert loaded.config == adapter.config
    actions = torch.randn(3, 2, 2)
    assert torch.equal(loaded.to_latent(actions), adapter.to_latent(actions))


def tiny_lam() -> LatentActionModel:
    torch.manual_seed(0)
    return LatentActionModel(
        LAMConfig(frame_size=16, patch_size=8, width=32, depth=1, heads=2, code_dim=8, num_codes=8)
    )


def synthetic_clips(count: int, frame_size: int = 16, length: int = 4) -> list[dict]:
    generator = torch.Generator().manual_seed(2)
    return [
        {
            "video": torch.rand(length, 3, frame_size, frame_size, generator=generator) * 2 - 1,
            "actions": torch.rand(length, 4, generator=generator) * 100,
        }
        for _ in range(count)
    ]


def test_train_adapter_with_a_real_lam():
    lam = tiny_lam()
    clips = synthetic_clips(10)
    adapter = train_adapter(lam, clips, steps=150, labelled_fraction=0.5, hidden=64, lr=3e-3)
    assert adapter.config.tokens_per_action == lam.config.tokens_per_action
    assert torch.equal(adapter.codebook, lam.quantizer.codes())
    # Every latent the adapter emits is a row of the LAM's codebook.
    latent = adapter.to_latent(torch.rand(2, 3, 2) * 100)
    distance = torch.cdist(latent.reshape(-1, 8), lam.quantizer.codes()).min(-1).values
    assert distance.max() < 1e-6
    assert adapter_accuracy(adapter, lam, clips) > 1.5 / lam.config.num_codes
    actions, codes, frames = label_clips(lam, clips[:2], action_columns=(2, 3))
    assert actions.shape == (6, 2) and codes.shape == (6, 2) and frames is None


def test_train_adapter_depends_on_its_seed_not_on_the_global_generator():
    lam = tiny_lam()
    clips = synthetic_clips(4)
    adapters = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        adapters.append(train_adapter(lam, clips, steps=3, labelled_fraction=1.0, hidden=16, seed=5))
    first, second = (adapter.state_dict() for adapter in adapters)
    assert all(torch.equal(first[name], second[name]) for name in first)
    torch.manual_seed(1)
    other_seed = train_adapter(lam, clips, steps=3, labelled_fraction=1.0, hidden=16, seed=6).state_dict()
    assert not all(torch.equal(first[name], other_seed[name]) for name in first)


def test_bad_input_errors():
    lam = tiny_lam()
    with pytest.raises(ValueError, match="empty"):
        train_adapter(lam, [], steps=1)
    with pytest.raises(ValueError, match="LAM expects 16x16"):
        train_adapter(lam, synthetic_clips(2, frame_size=32), steps=1, labelled_fraction=1.0)
    with pytest.raises(ValueError, match="out of range"):
        train_adapter(lam, synthetic_clips(2), steps=1, labelled_fraction=1.0, action_columns=(4, 5))
    with pytest.raises(ValueError, match="labelled_fraction"):
        train_adapter(lam, synthetic_clips(2), labelled_fraction=0.0)
    adapter = ActionAdapter(AdapterConfig(action_in=2, num_codes=4, code_dim=2, hidden=8))
    with pytest.raises(ValueError, match="columns"):
        adapter.logits(torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"\[B, N, A\]"):
        adapter.logits(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="without frames"):
        adapter.logits(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3, 64, 64))
    with pytest.raises(ValueError, match="action_columns"):
        AdapterConfig(action_in=3, action_columns=[0, 1])
