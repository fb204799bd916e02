"""The in-memory episode every dataset format loads into."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DatasetError(ValueError):
    """A dataset on disk is missing, malformed or unusable; the message names the file and the fix."""


@dataclass
class Episode:
    """One episode held in memory.

    frames:  uint8   [T, H, W, 3]
    actions: float32 [T, A]  (A = 0 for action-free video)
    states:  float32 [T, S]  (S = 0 when the source records no state)
    index:   the episode's index in its dataset (the key of the train/val/test split)
    seed:    the PushT reset seed the episode was collected with, None for other sources
    """

    frames: np.ndarray
    actions: np.ndarray
    states: np.ndarray
    index: int
    seed: int | None = None
    action_names: list[str] = field(default_factory=list)
    state_names: list[str] = field(default_factory=list)
    source: Path | None = None

    def __post_init__(self) -> None:
        where = f" (from {self.source})" if self.source is not None else ""
        frames, actions, states = self.frames, self.actions, self.states
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"episode {self.index}{where}: frames must be uint8 [T, H, W, 3], got {frames.dtype} "
                f"{list(frames.shape)}; convert the frames to 8-bit RGB first"
            )
        for name, array in (("actions", actions), ("states", states)):
            if array.dtype != np.float32 or array.ndim != 2 or array.shape[0] != frames.shape[0]:
                raise ValueError(
                    f"episode {self.index}{where}: {name} must be float32 [T={frames.shape[0]}, D], got "
                    f"{array.dtype} {list(array.shape)}; give one row per frame"
                )
        if self.action_names and len(self.action_names) != actions.shape[1]:
            raise ValueError(
                f"episode {self.index}{where}: {len(self.action_names)} action names for "
                f"{actions.shape[1]} action columns"
            )
        if self.state_names and len(self.state_names) != states.shape[1]:
            raise ValueError(
                f"episode {self.index}{where}: {len(self.state_names)} state names for "
                f"{states.shape[1]} state columns"
            )

    def __len__(self) -> int:
        return int(self.frames.shape[0])
