"""StateReadout: learns to read the block pose off PushT frames; the pose cost built on it; its bad input."""

import math

import numpy as np
import pytest
import torch
from cola_eval.planning import BlockPoseCost, Goal, Prediction, StateReadout, readout_errors, train_readout
from cola_eval.planning.readout import frames_to_tensor, labelled_frames
from cola_train.data import make_pusht_env, pusht_state, render_frame, rollout_pusht

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_poses(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames of PushT resets, whose block poses are uniformly random: diverse labelled frames, cheaply."""
    env = make_pusht_env()
    frames, poses = [], []
    for i in range(count):
        env.reset(seed=seed + i)
        frames.append(render_frame(env))
        poses.append(pusht_state(env)[2:5])
    return np.stack(frames), np.stack(poses)


@pytest.fixture(scope="module")
def trained():
    frames, poses = random_poses(400, seed=0)
    return train_readout(frames, poses, steps=250, batch_size=32, lr=3e-3, width=16)


def test_readout_reads_block_position_better_than_the_mean(trained):
    frames, poses = random_poses(100, seed=10_000)
    errors = readout_errors(trained, frames, poses)
    baseline = np.linalg.norm(poses[:, :2] - poses[:, :2].mean(0), axis=1).mean()
    assert errors.frames == 100
    assert errors.position_px < 0.6 * baseline, (errors, baseline)
    assert 0.0 <= errors.angle_rad <= math.pi


def test_pose_cost_uses_the_readout_on_predicted_and_goal_frames(trained):
    frames, _ = random_poses(3, seed=20_000)
    images = frames_to_tensor(frames)
    cost = BlockPoseCost(trained)
    values = cost(Prediction(frames=images[:, None], states=None), Goal(images[0], np.zeros(5)))
    assert values.shape == (3, 1)
    assert values[0, 0].abs() < 1e-4  # the goal frame itself reads as the goal pose
    poses = trained.pose(images)
    assert (poses[:, :2] >= -50).all() and (poses[:, 2].abs() <= math.pi + 1e-6).all()


def test_hub_round_trip(trained, tmp_path):
    trained.save_pretrained(tmp_path)
    loaded = StateReadout.from_pretrained(tmp_path)
    frames = frames_to_tensor(random_poses(2, seed=5)[0])
    assert torch.equal(loaded.pose(frames), trained.pose(frames))


def test_labelled_frames_from_episodes():
    episodes = [rollout_pusht(reset_seed=i, policy_seed=i, length=5, index=i) for i in range(2)]
    frames, poses = labelled_frames(episodes)
    assert frames.shape == (10, 64, 64, 3) and poses.shape == (10, 3)
    assert np.array_equal(poses[5:], episodes[1].states[:, 2:5])


def test_bad_input_errors(trained):
    with pytest.raises(ValueError, match="non-empty"):
        train_readout(np.zeros((0, 64, 64, 3), np.uint8), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="one block pose each"):
        train_readout(np.zeros((2, 64, 64, 3), np.uint8), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="another size"):
        trained.pose(torch.zeros(1, 3, 32, 32))
    episode = rollout_pusht(reset_seed=0, policy_seed=0, length=3)
    episode.states = episode.states[:, :2]
    with pytest.raises(ValueError, match="block pose"):
        labelled_frames([episode])
