"""The PushT planning protocol: seeded start/goal pairs from held-out episodes, exact starts, success rules.

Success is always judged from the simulator's state (agent x, y, block x, y, block angle), never from a model:
``success`` is the DINO-WM / stable-worldmodel task rule on the block alone (position error < 20 px and
wrapped angle error < pi/9); ``success_strict`` is stable-worldmodel's stricter rule, which also asks the
agent to be back where it was: the joint (agent, block) position error < 20 px, with the same angle rule.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cola_train.data import Episode, pusht_state, render_frame, restore_state
from gym_pusht.envs.pusht import PushTEnv

POSITION_TOLERANCE_PX = 20.0
ANGLE_TOLERANCE_RAD = math.pi / 9
# A replayed start must land on the recorded state; float32 storage of the state allows this much.
REPLAY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class PlanningPair:
    """Start frame ``start`` and goal frame ``goal`` of ``episodes[episode]`` (a position in the list)."""

    episode: int
    start: int
    goal: int


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Map angles to [-pi, pi)."""
    return (np.asarray(angle) + math.pi) % (2 * math.pi) - math.pi


def block_errors(state: np.ndarray, goal_state: np.ndarray) -> tuple[float, float, float]:
    """(block position error px, |wrapped block angle error| rad, agent position error px)."""
    state, goal_state = np.asarray(state, dtype=np.float64), np.asarray(goal_state, dtype=np.float64)
    block = float(np.linalg.norm(state[2:4] - goal_state[2:4]))
    angle = float(abs(wrap_angle(state[4] - goal_state[4])))
    agent = float(np.linalg.norm(state[:2] - goal_state[:2]))
    return block, angle, agent


def is_success(state: np.ndarray, goal_state: np.ndarray) -> bool:
    block, angle, _ = block_errors(state, goal_state)
    return block < POSITION_TOLERANCE_PX and angle < ANGLE_TOLERANCE_RAD


def is_strict_success(state: np.ndarray, goal_state: np.ndarray) -> bool:
    block, angle, agent = block_errors(state, goal_state)
    return math.hypot(block, agent) < POSITION_TOLERANCE_PX and angle < ANGLE_TOLERANCE_RAD


def make_pairs(
    episodes: Sequence[Episode], num_pairs: int, goal_offset: int = 25, seed: int = 0
) -> list[PlanningPair]:
    """``num_pairs`` distinct (episode, start) pairs, the goal ``goal_offset`` steps later; the same pairs for
    the same seed.

    Episodes are visited round-robin in a seeded order so pairs spread over all of them.
    """
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be >= 1, got {num_pairs}.")
    usable = [
        i for i, episode in enumerate(episodes) if len(episode) > goal_offset and episode.seed is not None
    ]
    if not usable:
        raise ValueError(
            f"no usable planning episodes among the {len(episodes)} given: planning needs PushT "
            "episodes with a "
            f"reset seed and more than goal_offset={goal_offset} frames (collect them with `cola-train "
            "collect "
            "pusht`)."
        )
    capacity = sum(len(episodes[i]) - goal_offset for i in usable)
    if num_pairs > capacity:
        raise ValueError(
            f"asked for {num_pairs} pairs but the episodes hold only {capacity} start/goal pairs."
        )
    rng = np.random.default_rng(seed)
    order = [usable[i] for i in rng.permutation(len(usable))]
    chosen: set[tuple[int, int]] = set()
    pairs = []
    while len(pairs) < num_pairs:
        for index in order:
            if len(pairs) == num_pairs:
                break
            free = [s for s in range(len(episodes[index]) - goal_offset) if (index, s) not in chosen]
            if not free:
                continue
            start = int(rng.choice(free))
            chosen.add((index, start))
            pairs.append(PlanningPair(index, start, start + goal_offset))
    return pairs


def restore_exactly(episode: Episode, step: int) -> PushTEnv:
    """The env in the recorded state of frame ``step``, checked against the recorded state."""
    env = restore_state(episode, step)
    if episode.states.shape[1] >= 5:
        replayed = pusht_state(env)
        recorded = episode.states[step, :5]
        error = np.abs(replayed[:4] - recorded[:4]).max()
        angle_error = abs(float(wrap_angle(replayed[4] - recorded[4])))
        if error > REPLAY_TOLERANCE or angle_error > REPLAY_TOLERANCE:
            raise ValueError(
                f"episode {episode.index} does not replay to its recorded state at step {step} (off by "
                f"{max(error, angle_error):.3g}); it was recorded with another PushT version or its "
                "actions are "
                "not the targets the env was stepped with. Recollect it with `cola-train collect pusht`."
            )
    return env


def goal_of(episode: Episode, pair: PlanningPair) -> tuple[np.ndarray, np.ndarray]:
    """(goal frame uint8 [H, W, 3] rendered by the simulator, goal state [5]) for ``pair``."""
    env = restore_exactly(episode, pair.goal)
    return render_frame(env), pusht_state(env)
