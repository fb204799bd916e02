"""PushT: env construction, the scripted pusher, deterministic collection, exact restoring, the CLI."""

from __future__ import annotations

import json
import sys

import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)
import gymnasium as gym
import numpy as np
import pytest
from cola_train.cli import main
from cola_train.data import (
    Episode,
    collect_pusht,
    load_episodes,
    make_pusht_env,
    pusht_state,
    render_frame,
    restore_state,
    rollout_pusht,
)
from cola_train.data.collect import episode_seeds


def _body_state(env) -> tuple[float, ...]:
    """Every float of the physics a replay must reproduce (positions, velocities, angles)."""
    core = env.unwrapped
    agent, block = core.agent, core.block
    return (
        *agent.position,
        *agent.velocity,
        *block.position,
        *block.velocity,
        block.angle,
        block.angular_velocity,
    )


def _block_moved(states: np.ndarray) -> np.ndarray:
    step = np.abs(np.diff(states[:, 2:], axis=0))
    turn = np.minimum(step[:, 2], 2 * np.pi - step[:, 2])
    return (step[:, :2].max(axis=1) > 0.1) | (turn > 1e-3)


def test_frames_match_the_stock_gym_pusht_env():
    stock = gym.make(
        "gym_pusht/PushT-v0",
        obs_type="pixels_agent_pos",
        render_mode="rgb_array",
        observation_width=64,
        observation_height=64,
    )
    ours = make_pusht_env(64)
    targets = np.random.default_rng(0).uniform(60, 450, size=(25, 2)).astype(np.float32)
    stock_obs, _ = stock.reset(seed=7)
    our_obs, _ = ours.reset(seed=7)
    assert np.array_equal(stock_obs["pixels"], our_obs["pixels"])
    for target in targets:
        stock_obs, *_ = stock.step(target)
        our_obs, *_ = ours.step(target)
        assert np.array_equal(stock_obs["pixels"], our_obs["pixels"])
        assert np.array_equal(stock_obs["agent_pos"], our_obs["agent_pos"])


def test_rollout_records_frames_actions_and_states():
    episode = rollout_pusht(reset_seed=3, policy_seed=4, length=30)
    assert episode.frames.shape == (30, 64, 64, 3) and episode.frames.dtype == np.uint8
    assert episode.actions.shape == (30, 4) and episode.actions.dtype == np.float32
    assert episode.states.shape == (30, 5) and episode.states.dtype == np.float32
    assert episode.seed == 3
    # delta = target - agent position, in the same pixels as the state
    delta = episode.actions[:, :2] - episode.states[:, :2]
    np.testing.assert_allclose(episode.actions[:, 2:], delta, atol=1e-3)
    assert (episode.actions[:, :2] >= 0).all() and (episode.actions[:, :2] <= 512).all()
    assert ((episode.states[:, 4] >= 0) & (episode.states[:, 4] < 2 * np.pi)).all()


def test_scripted_pusher_moves_the_block_in_most_steps():
    env = make_pusht_env()
    moved = np.concatenate(
        [_block_moved(rollout_pusht(seed, 100 + seed, 120, env=env).states) for seed in range(3)]
    )
    assert moved.mean() > 0.5, f"the block moved in only {moved.mean():.0%} of steps"


def test_rollout_is_deterministic_and_depends_on_the_seeds():
    first = rollout_pusht(11, 12, 40)
    again = rollout_pusht(11, 12, 40, env=make_pusht_env())
    for name in ("frames", "actions", "states"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.actions, rollout_pusht(11, 13, 40).actions)
    assert not np.array_equal(first.states[0], rollout_pusht(21, 12, 40).states[0])


@pytest.mark.parametrize("reset_seed", [0, 5, 123456789])
def test_restore_state_is_bit_exact(reset_seed):
    length = 60
    episode = rollout_pusht(reset_seed, reset_seed + 1, length)
    for step in (0, 1, 17, 38, length - 1):
        # The env a rollout of step + 1 frames ends in is the one that recorded frame `step`.
        recorder = make_pusht_env()
        rollout_pusht(reset_seed, reset_seed + 1, step + 1, env=recorder)
        restored = restore_state(episode, step)
        assert _body_state(restored) == _body_state(recorder)
        assert np.array_equal(pusht_state(restored), episode.states[step])
        assert np.array_equal(render_frame(restored), episode.frames[step])


def test_restore_state_rejects_episodes_without_a_seed():
    frames = np.zeros((3, 64, 64, 3), dtype=np.uint8)
    episode = Episode(frames, np.zeros((3, 4), np.float32), np.zeros((3, 5), np.float32), index=0)
    with pytest.raises(ValueError, match="no reset seed"):
        restore_state(episode, 1)
    episode.seed = 1
    with pytest.raises(ValueError, match="step must be in"):
        restore_state(episode, 3)


def test_collection_is_deterministic_across_worker_counts(tmp_path):
    serial = load_episodes(collect_pusht(tmp_path / "a", episodes=3, seed=5, episode_length=25, workers=1))
    parallel = load_episodes(
        collect_pusht(tmp_path / "b", episodes=3, seed=5, episode_length=25, workers=2, progress=False)
    )
    other = load_episodes(collect_pusht(tmp_path / "c", episodes=3, seed=6, episode_length=25, workers=1))
    for a, b in zip(serial, parallel, strict=True):
        assert (a.index, a.seed) == (b.index, b.seed)
        for name in ("frames", "actions", "states"):
            assert np.array_equal(getattr(a, name), getattr(b, name))
    assert [e.seed for e in serial] != [e.seed for e in other]
    assert not np.array_equal(serial[0].actions, other[0].actions)


def test_collected_dataset_restores_exactly_from_disk(tmp_path):
    episodes = load_episodes(collect_pusht(tmp_path / "d", episodes=2, seed=9, episode_length=40, workers=2))
    env = make_pusht_env()
    for episode in episodes:
        assert episode.seed == episode_seeds(9, episode.index)[0]
        assert episode.action_names == ["target_x", "target_y", "delta_x", "delta_y"]
        assert episode.state_names == ["agent_x", "agent_y", "block_x", "block_y", "block_angle"]
        exact = rollout_pusht(*episode_seeds(9, episode.index), 40)
        assert np.array_equal(exact.actions, episode.actions) and np.array_equal(exact.states, episode.states)
        # The stored video is lossless h264 4:4:4: only the RGB <-> YUV rounding remains.
        error = np.abs(exact.frames.astype(int) - episode.frames.astype(int))
        assert error.max() <= 2 and error.mean() < 0.1
        for step in (0, 13, 39):
            restore_state(episode, step, env=env)
            assert np.array_equal(pusht_state(env), episode.states[step])
            assert np.array_equal(render_frame(env), exact.frames[step])


def test_collection_without_videos_stores_exact_frames_and_reads_without_pyav(tmp_path, monkeypatch):
    root = collect_pusht(
        tmp_path / "png", episodes=2, seed=9, episode_length=12, workers=1, progress=False, use_videos=False
    )
    assert not (root / "videos").exists()
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"]["observation.image"]["dtype"] == "image" and info["total_videos"] == 0
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now fails, as where PyAV is not installed
    for episode in load_episodes(root):
        exact = rollout_pusht(*episode_seeds(9, episode.index), 12)
        assert np.array_equal(episode.frames, exact.frames)
        assert np.array_equal(episode.states, exact.states)
    with pytest.raises(ImportError, match=r"needs PyAV.*--no-videos"):
        collect_pusht(tmp_path / "mp4", episodes=1, seed=9, episode_length=4, workers=1, progress=False)


def test_cli_collects_and_refuses_a_used_directory(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["collect", "pusht", "--episodes", "2", "--out", str(out), "--episode-length", "10"]
    argv += ["--workers", "1"]
    assert main(argv) == 0
    assert "wrote 2 episodes (20 frames)" in capsys.readouterr().out
    assert [len(e) for e in load_episodes(out)] == [10, 10]
    assert main(argv) == 2
    assert "not an empty directory" in capsys.readouterr().err
    assert main([*argv[:5], str(tmp_path / "cli-png"), *argv[6:], "--no-videos"]) == 0
    assert not (tmp_path / "cli-png" / "videos").exists()
    assert [len(e) for e in load_episodes(tmp_path / "cli-png")] == [10, 10]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"episodes": 0}, "episodes >= 1"),
        ({"episodes": 1, "episode_length": 1}, "episode_length >= 2"),
        ({"episodes": 1, "seed": -1}, "non-negative"),
        ({"episodes": 1, "workers": 0}, "workers must be"),
    ],
)
def test_collect_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        collect_pusht(tmp_path / "bad", **kwargs)


def test_exploring_pusher_wanders_yet_still_pushes_the_block():
    env = make_pusht_env()
    scripted = [rollout_pusht(seed, 100 + seed, 120, env=env) for seed in range(3)]
    exploring = [rollout_pusht(seed, 100 + seed, 120, env=env, explore=0.5) for seed in range(3)]

    # wanders change where the agent goes: its step-to-step heading is less predictable
    def heading_change(episodes):
        turns = []
        for episode in episodes:
            steps = np.diff(episode.states[:, :2], axis=0)
            angles = np.arctan2(steps[:, 1], steps[:, 0])
            turns.append(np.abs(np.angle(np.exp(1j * np.diff(angles)))).mean())
        return float(np.mean(turns))

    assert heading_change(exploring) > heading_change(scripted)
    assert np.concatenate([_block_moved(episode.states) for episode in exploring]).mean() > 0.3
    with pytest.raises(ValueError, match="explore"):
        rollout_pusht(0, 1, 5, env=env, explore=1.5)
