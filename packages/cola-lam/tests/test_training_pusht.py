"""A short two-stage LAM run (IDM + VQ + LAMDecoder) on PushT clips rendered here with gym-pusht."""

import numpy as np
import pytest
import torch
from cola_lam import LAMConfig, LAMDecoder, LatentActionModel, codebook_stats, reconstruction_loss

gym = pytest.importorskip("gymnasium")
pytest.importorskip("gym_pusht")


def render_pusht_episodes(num_episodes: int, steps: int, seed: int = 0) -> torch.Tensor:
    """``[E, steps + 1, 3, 64, 64]`` in [-1, 1]; the agent wanders to random nearby targets."""
    rng = np.random.default_rng(seed)
    env = gym.make("gym_pusht/PushT-v0", obs_type="pixels", observation_width=64, observation_height=64)
    episodes = []
    for episode in range(num_episodes):
        frame, _ = env.reset(seed=seed + episode)
        frames = [frame]
        for _ in range(steps):
            position = np.asarray(env.unwrapped.agent.position)
            target = np.clip(position + rng.uniform(-80, 80, size=2), 20, 492).astype(np.float32)
            frame, *_ = env.step(target)
            frames.append(frame)
        episodes.append(np.stack(frames))
    env.close()
    return torch.from_numpy(np.stack(episodes)).permute(0, 1, 4, 2, 3).float() / 127.5 - 1


def test_two_stage_training_lowers_loss_and_uses_many_codes():
    torch.manual_seed(0)
    episodes = render_pusht_episodes(num_episodes=8, steps=30)
    config = LAMConfig.preset(
        "tiny", width=64, depth=2, heads=4, decoder_depth=1, dead_code_steps=5, restart_buffer_size=64
    )
    lam, decoder = LatentActionModel(config), LAMDecoder(config)
    optimizer = torch.optim.AdamW([*lam.parameters(), *decoder.parameters()], lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    clip_length, batch_size = 3, 8

    losses, picked = [], []
    for _ in range(40):
        episode = torch.randint(0, episodes.shape[0], (batch_size,), generator=generator)
        start = torch.randint(0, episodes.shape[1] - clip_length + 1, (batch_size,), generator=generator)
        video = torch.stack([episodes[e, s : s + clip_length] for e, s in zip(episode, start, strict=True)])
        out = lam(video)
        pred = decoder(video[:, :-1].flatten(0, 1), out.quantized.flatten(0, 1))
        recon = reconstruction_loss(pred, video[:, 1:].flatten(0, 1))
        optimizer.zero_grad()
        (recon + out.loss).backward()
        optimizer.step()
        losses.append(recon.item())
        picked.append(out.indices.flatten())

    assert all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:5])
    stats = codebook_stats(torch.cat(picked[-10:]), config.num_codes)
    assert stats.utilization * config.num_codes >= 8, stats
