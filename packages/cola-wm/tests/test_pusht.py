"""World models trained on PushT clips with the real actions, scored against copying the last frame.

Clips come straight from gym-pusht (a test-only dependency, skipped when absent): a random-walk pusher,
frames rendered 4x larger and area-averaged down, actions in cola_train's PushT layout (target_x, target_y,
delta_x, delta_y), normalised. Scores are PSNR over held-out episodes, on the same frames for the model and
for the copy-last baseline.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cola_wm import ActionConditionedDiT, DiTConfig, flow_matching_loss, sample

gym = pytest.importorskip("gymnasium")
pytest.importorskip("gym_pusht")

# env pixels per frame pixel at 16x16 (the env window is 512 wide); the agent is 30 env pixels across
ENV_PIXELS_PER_FRAME_PIXEL_16 = 32


def pusht_episodes(
    episodes: int, steps: int, seed: int, frame_size: int, action_repeat: int, reach: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Video [E, S, 3, size, size] in [-1, 1], actions [E, S, 4] and agent positions [E, S, 2] (env pixels)
    from a random-walk pusher.

    Each action (a target up to ``reach`` env pixels from the agent) is held for ``action_repeat`` env steps
    (the world model runs at a lower control rate), so the agent moves further between frames."""
    env = gym.make(
        "gym_pusht/PushT-v0",
        obs_type="pixels_agent_pos",
        observation_width=4 * frame_size,
        observation_height=4 * frame_size,
    )
    rng = np.random.default_rng(seed)
    videos, actions, positions = [], [], []
    for _ in range(episodes):
        obs, _ = env.reset(seed=int(rng.integers(2**30)))
        direction = rng.normal(size=2)
        frames, taken, agent_positions = [], [], []
        for _ in range(steps):
            agent = np.asarray(obs["agent_pos"], dtype=np.float64)
            direction = 0.6 * direction + 0.8 * rng.normal(size=2)
            target = np.clip(agent + reach * direction, 20, 492)
            frames.append(obs["pixels"])
            agent_positions.append(agent)
            taken.append(np.concatenate([target / 256 - 1, (target - agent) / 256]))
            for _ in range(action_repeat):
                obs, *_ = env.step(target.astype(np.float32))
        pixels = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
        videos.append(F.avg_pool2d(pixels, 4))
        actions.append(torch.tensor(np.stack(taken), dtype=torch.float32))
        positions.append(torch.tensor(np.stack(agent_positions), dtype=torch.float32))
    env.close()
    return torch.stack(videos), torch.stack(actions), torch.stack(positions)


def windows(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """Every window of ``length`` steps of ``tensor [E, S, ...]``, stacked along the batch."""
    return torch.cat([tensor[:, s : s + length] for s in range(tensor.shape[1] - length + 1)])


def psnr(prediction: torch.Tensor, truth: torch.Tensor) -> float:
    """PSNR of the mean squared error over all given frames, for values in [-1, 1]."""
    return (10 * torch.log10(4 / (prediction - truth).pow(2).mean())).item()


def train_and_evaluate(
    *,
    episodes: int,
    test_episodes: int,
    frame_size: int,
    action_repeat: int,
    reach: float,
    clip: int,
    patch_size: int,
    steps: int,
    batch: int,
    lr: float,
    action_lr_multiplier: float,
    time_sampling: str,
    min_agent_motion: float,
    prediction: str = "residual",
) -> dict[str, float]:
    """Train on clips of ``clip`` frames (one context frame) and roll out the rest of each held-out clip in
    which the agent moves more than ``min_agent_motion`` env pixels on some predicted transition (elsewhere
    copying the last frame is exact). Returns PSNRs with the real, null and shuffled actions and of copying
    the last context frame, and the number of evaluated clips."""
    torch.manual_seed(0)
    video, actions, positions = pusht_episodes(episodes, 24, 0, frame_size, action_repeat, reach)
    train_video = windows(video[:-test_episodes], clip)
    train_actions = windows(actions[:-test_episodes], clip)[:, : clip - 1]
    test_video = windows(video[-test_episodes:], clip)
    test_actions = windows(actions[-test_episodes:], clip)[:, : clip - 1]
    test_positions = windows(positions[-test_episodes:], clip)
    motion = (test_positions[:, 1:] - test_positions[:, :-1]).norm(dim=-1).max(1).values
    moving = motion > min_agent_motion
    test_video, test_actions = test_video[moving], test_actions[moving]

    config = DiTConfig(
        frame_size=frame_size,
        patch_size=patch_size,
        num_frames=clip,
        width=64,
        depth=3,
        heads=4,
        action_dim=4,
        action_width=32,
        action_depth=1,
        action_heads=2,
        prediction=prediction,
    )
    model = ActionConditionedDiT(config)
    # the action conditioner starts at zero output and must learn from a few agent pixels per frame: a
    # higher learning rate for it than for the backbone
    optimizer = torch.optim.AdamW(
        [
            {"params": list(model.backbone_parameters()), "lr": lr},
            {"params": list(model.action_parameters()), "lr": lr * action_lr_multiplier},
        ],
        weight_decay=0.0,
    )
    # short warm-up, then linear decay to zero: the last steps settle the weights, which sharpens the rollouts
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / 50) * (1 - i / steps)
    )
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        index = torch.randint(0, train_video.shape[0], (batch,), generator=generator)
        loss = flow_matching_loss(
            model, train_video[index], train_actions[index], 1, time_sampling, generator=generator
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()

    model.eval()
    context, truth = test_video[:, :1], test_video[:, 1:]
    shuffle = torch.randperm(test_actions.shape[0], generator=torch.Generator().manual_seed(3))
    conditions = {
        "model": test_actions,
        "null_actions": model.null_actions(test_actions.shape[0], clip - 1),
        "shuffled_actions": test_actions[shuffle],
    }
    result = {}
    for name, condition in conditions.items():
        rollout = sample(model, context, condition, steps=10, generator=torch.Generator().manual_seed(1))
        result[name] = psnr(rollout[:, 1:], truth)
    result["copy_last"] = psnr(context.expand_as(truth), truth)
    result["clips"] = float(test_video.shape[0])
    return result


def test_short_training_beats_copying_the_last_frame():
    """Cheap version: 500 steps on clips of 4 frames at 16x16 (all held-out clips). Measured with the default
    residual prediction and clean-frame loss: 30.53 dB vs 30.45 dB for copying (null actions 30.49, shuffled
    30.50); with the velocity loss 30.43 dB, with velocity prediction 28.3 dB."""
    result = train_and_evaluate(
        episodes=20,
        test_episodes=4,
        frame_size=16,
        action_repeat=1,
        reach=250,
        clip=4,
        patch_size=4,
        steps=500,
        batch=16,
        lr=2e-3,
        action_lr_multiplier=1.0,
        time_sampling="logit_normal",
        min_agent_motion=0.0,
    )
    print(result)
    assert result["model"] > result["copy_last"], result


@pytest.fixture(scope="module")
def moving_clip_result() -> dict[str, float]:
    """1500 steps on 16x16 frames, each action held for 4 env steps, one context frame and one predicted
    frame, velocity prediction, scored on the held-out clips where the agent moves more than one frame
    pixel."""
    result = train_and_evaluate(
        episodes=40,
        test_episodes=6,
        frame_size=16,
        action_repeat=4,
        reach=200,
        clip=2,
        patch_size=2,
        steps=1500,
        batch=16,
        lr=3e-3,
        action_lr_multiplier=5.0,
        time_sampling="uniform",
        min_agent_motion=ENV_PIXELS_PER_FRAME_PIXEL_16,
        # 2x2 patches hold 12 values, narrower than the width of 64: plain velocity prediction has no
        # bottleneck here and scored higher than the default residual form (30.82 vs 30.19 dB)
        prediction="velocity",
    )
    print(result)
    return result


@pytest.mark.slow
def test_rollouts_with_real_actions_beat_copying_the_last_frame(moving_clip_result):
    """Measured (2 CPU threads, 102 s): 30.82 dB for the model vs 30.41 dB for copying, on 93 moving held-out
    clips."""
    assert moving_clip_result["model"] > moving_clip_result["copy_last"], moving_clip_result


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="the action conditioner collapses to an action-independent bias on CPU budgets: measured 30.82 dB "
    "with real, null and shuffled actions alike (1500 steps; 30.93 dB for all three after 2500 steps)",
)
def test_rollouts_read_the_actions(moving_clip_result):
    result = moving_clip_result
    assert result["model"] > result["null_actions"] + 0.1, result
    assert result["model"] > result["shuffled_actions"] + 0.1, result
