"""The PushT environment: construction, state readout, scripted rollouts and exact state restoring.

A PushT state is rebuilt by resetting with the episode's seed and replaying its recorded targets, never by
writing pymunk bodies: gym-pusht's `reset_to_state` sets the block position before its angle (landing it up
to 90 px off), and even writing every body field drops pymunk's contact state, so open-loop replays from
such states drift. Replay is bit-exact because collection steps the env with exactly the float32 targets it
stores.
"""

from __future__ import annotations

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame's import banner would clutter the CLI

import cv2
import numpy as np
import pygame
from gym_pusht.envs.pusht import PushTEnv

from cola_train.data.episode import Episode
from cola_train.data.pusht_layout import ACTION_NAMES, STATE_NAMES
from cola_train.data.pusht_policy import ScriptedPusher

FRAME_SIZE = 64
FPS = PushTEnv.metadata["render_fps"]
TASK = "Push the T-shaped block onto the T-shaped target."


class _FastReadoutPushTEnv(PushTEnv):
    """gym-pusht's PushT with a faster screen readout; its frames are bit-identical to the stock env's.

    The stock env copies a transposed, strided view of the 512x512 pygame surface, which costs as much as
    the physics and drawing together. Reading the surface row-major as 4-byte RGBX pixels is a plain copy,
    and OpenCV resizes each channel on its own, so dropping X after the resize gives the same frame for a
    twentieth of the cost.
    """

    def _get_img(self, screen, width, height, render_action=False):
        if render_action:
            return super()._get_img(screen, width, height, render_action)
        side = screen.get_width()
        pixels = np.frombuffer(pygame.image.tobytes(screen, "RGBX"), dtype=np.uint8).reshape(side, side, 4)
        return np.ascontiguousarray(cv2.resize(pixels, (width, height))[:, :, :3])


def make_pusht_env(frame_size: int = FRAME_SIZE) -> PushTEnv:
    """The headless PushT env that collection, restoring and planning all use: rgb frames of `frame_size`.

    Observations are dicts with "pixels" (uint8 [frame_size, frame_size, 3]) and "agent_pos".
    """
    if frame_size < 8:
        raise ValueError(f"frame_size must be at least 8 pixels, got {frame_size}")
    return _FastReadoutPushTEnv(
        obs_type="pixels_agent_pos",
        render_mode="rgb_array",
        observation_width=frame_size,
        observation_height=frame_size,
    )


def pusht_state(env: PushTEnv) -> np.ndarray:
    """float32 [5]: agent x, y, block x, y, block angle (radians in [0, 2*pi), as gym-pusht's state obs)."""
    core = env.unwrapped
    agent, block = core.agent.position, core.block.position
    return np.array(
        [agent[0], agent[1], block[0], block[1], core.block.angle % (2 * np.pi)], dtype=np.float32
    )


def render_frame(env: PushTEnv) -> np.ndarray:
    """uint8 [H, W, 3]: the frame of the env's current state (the pixels its observation holds)."""
    return env.unwrapped.get_obs()["pixels"]


def rollout_pusht(
    reset_seed: int,
    policy_seed: int,
    length: int,
    index: int = 0,
    frame_size: int = FRAME_SIZE,
    env: PushTEnv | None = None,
    explore: float = 0.0,
) -> Episode:
    """Drive the scripted pusher for `length` frames from the reset of `reset_seed` (in `env` if given);
    `explore` is the share of its plans that are random wanders (see `ScriptedPusher`).

    Row t holds the frame and state at step t and the action taken there: the absolute target (exactly the
    float32 values the env was stepped with) and the delta from the agent's position to it. The last action is
    recorded but not stepped, since no frame follows it.
    """
    if length < 1:
        raise ValueError(f"episode length must be at least 1 frame, got {length}")
    env = env if env is not None else make_pusht_env(frame_size)
    core = env.unwrapped
    policy = ScriptedPusher(np.random.default_rng(policy_seed), explore=explore)
    frames = np.empty((length, core.observation_height, core.observation_width, 3), dtype=np.uint8)
    actions = np.empty((length, 4), dtype=np.float32)
    states = np.empty((length, 5), dtype=np.float32)
    observation, _ = env.reset(seed=reset_seed)
    for t in range(length):
        frames[t] = observation["pixels"]
        states[t] = pusht_state(env)
        agent, block = np.asarray(core.agent.position), core.block
        block_pose = np.array([block.position[0], block.position[1], block.angle])
        target = policy(agent, block_pose).astype(np.float32)
        actions[t, :2] = target
        actions[t, 2:] = target.astype(np.float64) - agent
        if t + 1 < length:
            observation, *_ = env.step(target)
    return Episode(
        frames=frames,
        actions=actions,
        states=states,
        index=index,
        seed=reset_seed,
        action_names=list(ACTION_NAMES),
        state_names=list(STATE_NAMES),
    )


def restore_state(episode: Episode, step: int, env: PushTEnv | None = None) -> PushTEnv:
    """The env in exactly the state in which frame `step` of a collected PushT episode was recorded.

    Resets with the episode's seed and replays the target columns of actions[:step]; pass `env` to reuse one.
    """
    if episode.seed is None:
        raise ValueError(
            f"episode {episode.index} has no reset seed, so its states cannot be rebuilt; restore_state "
            "needs a PushT episode recorded by `cola-train collect pusht` (seeds: meta/episodes.jsonl)"
        )
    if episode.actions.shape[1] < 2:
        raise ValueError(
            f"episode {episode.index} has {episode.actions.shape[1]} action columns; restore_state needs the "
            "PushT targets (target_x, target_y) in the first two"
        )
    if not 0 <= step < len(episode):
        raise ValueError(f"step must be in [0, {len(episode)}) for episode {episode.index}, got {step}")
    env = env if env is not None else make_pusht_env(episode.frames.shape[1])
    env.reset(seed=episode.seed)
    # Replay without drawing a frame per step (most of a step's cost): the physics never read the frames.
    core = env.unwrapped
    observation_type, core.obs_type = core.obs_type, "state"
    try:
        for target in episode.actions[:step, :2]:
            env.step(np.array(target, dtype=np.float32))
    finally:
        core.obs_type = observation_type
    return env
