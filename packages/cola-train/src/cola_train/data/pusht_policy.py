"""A scripted exploration policy for PushT that keeps the T moving.

A uniformly random target barely touches the block. This policy repeats one push after another: pick a point
on the T's outline and a direction into the block (the inward normal turned by a random angle), go around the
block to just outside that point, then keep the target a little past the point, inside the block, for a random
number of steps, so the agent shoves the block along. The plan lives in the block's own frame and is mapped to
the world at every step, so it follows the block as it moves and turns. Far from the middle, pushes that head
back towards it are preferred, which keeps the T off the walls (a kinematic agent can drive it through them).

With ``explore > 0`` that share of the plans is a random wander instead of a push: for a few steps the agent
heads to random points near it. A pusher that only pushes is predictable from the frames it has seen, so a
world model trained on it can ignore its actions; wanders make the next motion depend on the action (DINO-WM
trains on noisy replays for the same reason) while the pushes still move the T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cola_train.data.pusht_layout import ARENA_PX

AGENT_RADIUS = 15.0
TARGET_MARGIN = 15.0  # keeps targets inside the walls (at 5 and 506 px)
CLEARANCE = 80.0  # approach paths stay this far from the block's centre of gravity until the final run-in
STANDOFF = 60.0  # the final run-in starts this far out along the edge normal

# The T's outline in the block's local frame (pymunk: world = position + R(angle) @ local), with the outward
# normal of each edge. The bar spans x in [-60, 60], y in [0, 30]; the stem x in [-15, 15], y in [30, 120].
_OUTLINE = np.array(
    [(-60, 0), (60, 0), (60, 30), (15, 30), (15, 120), (-15, 120), (-15, 30), (-60, 30)], dtype=np.float64
)
_EDGE_START = _OUTLINE
_EDGE_END = np.roll(_OUTLINE, -1, axis=0)
_EDGE_LENGTH = np.linalg.norm(_EDGE_END - _EDGE_START, axis=1)
# The outline runs counter-clockwise (y up), so each outward normal is its edge direction turned by -90°.
_EDGE_DIRECTION = (_EDGE_END - _EDGE_START) / _EDGE_LENGTH[:, None]
_EDGE_NORMAL = np.stack([_EDGE_DIRECTION[:, 1], -_EDGE_DIRECTION[:, 0]], axis=1)
_CENTRE_OF_GRAVITY = np.array([0.0, 45.0])  # gym-pusht's: the mean of the bar's and the stem's centroids


def _rotation(angle: float) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[cos, -sin], [sin, cos]])


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


def _distance_to_segment(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    span = end - start
    fraction = np.clip((point - start) @ span / max(float(span @ span), 1e-9), 0.0, 1.0)
    return float(np.linalg.norm(start + fraction * span - point))


@dataclass
class _Push:
    """One planned push, in the block's frame."""

    point: np.ndarray  # the contact point on the outline
    normal: np.ndarray  # its outward normal
    direction: np.ndarray  # the push direction (into the block)
    gap: float  # how far outside the outline the run-in ends
    depth: float  # how far past the contact point the target sits while pushing
    steps: int  # how many steps the push lasts
    approach_steps: int = 0


class ScriptedPusher:
    """Call with the agent position (x, y) and the block pose (x, y, angle); returns the next target (x, y).

    All randomness comes from `rng`, so a seeded generator gives a deterministic policy.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        approach_speed: float = 60.0,
        push_steps: tuple[int, int] = (6, 20),
        push_depth: tuple[float, float] = (15.0, 40.0),
        turn: float = 0.5,
        target_noise: float = 2.0,
        candidates: int = 8,
        max_approach_steps: int = 15,
        explore: float = 0.0,
        wander_steps: tuple[int, int] = (4, 12),
        wander_reach: tuple[float, float] = (20.0, 90.0),
    ) -> None:
        if not 0.0 <= explore <= 1.0:
            raise ValueError(
                f"explore is the share of random wanders among the plans, in [0, 1]; got {explore}"
            )
        self.rng = rng
        self.approach_speed = approach_speed
        self.push_steps = push_steps
        self.push_depth = push_depth
        self.turn = turn
        self.target_noise = target_noise
        self.candidates = candidates
        self.max_approach_steps = max_approach_steps
        self.explore = explore
        self.wander_steps = wander_steps
        self.wander_reach = wander_reach
        self._wander_left = 0
        self._push: _Push | None = None
        self._pushing = False
        self._target: np.ndarray | None = None

    def __call__(self, agent: np.ndarray, block_pose: np.ndarray) -> np.ndarray:
        agent = np.asarray(agent, dtype=np.float64)
        position, rotation = np.asarray(block_pose[:2], dtype=np.float64), _rotation(float(block_pose[2]))
        if self._target is None:
            self._target = agent.copy()
        if (
            self._push is None
            and self._wander_left == 0
            and self.explore > 0
            and self.rng.random() < self.explore
        ):
            self._wander_left = int(self.rng.integers(self.wander_steps[0], self.wander_steps[1] + 1))
        if self._wander_left > 0:
            self._wander_left -= 1
            angle = self.rng.uniform(0.0, 2 * np.pi)
            reach = self.rng.uniform(*self.wander_reach)
            target = agent + reach * np.array([np.cos(angle), np.sin(angle)])
            self._target = np.clip(target, TARGET_MARGIN, ARENA_PX - TARGET_MARGIN)
            return self._target
        if self._push is None:
            self._push = self._plan(agent, position, rotation)
            self._pushing = False
        push = self._push
        point = position + rotation @ push.point
        normal, direction = rotation @ push.normal, rotation @ push.direction
        if not self._pushing:
            start = point + normal * (AGENT_RADIUS + push.gap)
            push.approach_steps += 1
            if np.linalg.norm(agent - start) < 12.0:
                self._pushing = True
            elif push.approach_steps > self.max_approach_steps:
                self._push = None  # could not get there (the block kept moving): plan afresh next step
        if self._pushing:
            target = point + direction * push.depth
            push.steps -= 1
            if push.steps <= 0:
                self._push = None
        else:
            centre = position + rotation @ _CENTRE_OF_GRAVITY
            target = self._step_towards(self._approach_goal(agent, point, normal, start, centre))
        target = target + self.rng.normal(0.0, self.target_noise, size=2)
        self._target = np.clip(target, TARGET_MARGIN, ARENA_PX - TARGET_MARGIN)
        return self._target

    def _approach_goal(
        self, agent: np.ndarray, point: np.ndarray, normal: np.ndarray, start: np.ndarray, centre: np.ndarray
    ) -> np.ndarray:
        """Where to head now: run in along the normal once in front of the point, else go around the block."""
        offset = agent - point
        if offset @ normal > 0 and abs(offset @ np.array([-normal[1], normal[0]])) < 20.0:
            return start
        standoff = point + normal * STANDOFF
        clearance = min(CLEARANCE, float(np.linalg.norm(standoff - centre)) - 10.0)
        if _distance_to_segment(centre, agent, standoff) > clearance:
            return standoff
        around = _unit(agent - centre) + _unit(standoff - centre)
        if np.linalg.norm(around) < 1e-3:
            around = np.array([-(agent - centre)[1], (agent - centre)[0]])
        return centre + _unit(around) * (CLEARANCE + 20.0)

    def _step_towards(self, goal: np.ndarray) -> np.ndarray:
        gap = goal - self._target
        distance = float(np.linalg.norm(gap))
        return (
            goal if distance <= self.approach_speed else self._target + gap * (self.approach_speed / distance)
        )

    def _plan(self, agent: np.ndarray, position: np.ndarray, rotation: np.ndarray) -> _Push:
        edges = self.rng.choice(len(_EDGE_LENGTH), size=self.candidates, p=_EDGE_LENGTH / _EDGE_LENGTH.sum())
        along = self.rng.uniform(0.1, 0.9, size=self.candidates)
        turns = self.rng.uniform(-self.turn, self.turn, size=self.candidates)
        points = _EDGE_START[edges] + (_EDGE_END[edges] - _EDGE_START[edges]) * along[:, None]
        normals = _EDGE_NORMAL[edges]
        directions = np.stack([-_rotation(t) @ n for t, n in zip(turns, normals, strict=True)])

        # Short approaches keep the block busy; far from the middle, pushes heading back towards it keep the T
        # off the walls. Gumbel noise turns the scores into a random pick.
        starts = position + (points + normals * (AGENT_RADIUS + 5.0)) @ rotation.T
        to_centre = ARENA_PX / 2 - (position + rotation @ _CENTRE_OF_GRAVITY)
        off_centre = float(np.linalg.norm(to_centre))
        heading_home = (directions @ rotation.T) @ _unit(to_centre)
        score = (
            -np.linalg.norm(starts - agent, axis=1) / 100.0
            + 2.0 * heading_home * min(off_centre / 120.0, 1.5)
            + self.rng.gumbel(0.0, 0.5, size=self.candidates)
        )
        pick = int(np.argmax(score))
        return _Push(
            point=points[pick],
            normal=normals[pick],
            direction=directions[pick],
            gap=float(self.rng.uniform(2.0, 6.0)),
            depth=float(self.rng.uniform(*self.push_depth)),
            steps=int(self.rng.integers(self.push_steps[0], self.push_steps[1] + 1)),
        )
