"""Fixed-length training clips cut from in-memory episodes, and the split by episode."""

from __future__ import annotations

import bisect
import hashlib
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from cola_train.data.episode import Episode

SPLITS = ("train", "val", "test")


def split_of(episode_indices: Sequence[int], fractions: tuple[float, float] = (0.1, 0.1)) -> dict[int, str]:
    """Assign each episode index to "train", "val" or "test".

    Episodes are ranked by a hash of their index (not by any RNG), so the same indices always give the same
    split on any machine. The last `fractions[1]` of the ranking is test, the `fractions[0]` before it is val,
    the rest train; with three or more episodes val and test get at least one each.
    """
    val_fraction, test_fraction = fractions
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(f"split fractions (val, test) must be >= 0 and sum below 1, got {fractions}")
    ranked = sorted(set(episode_indices), key=lambda index: hashlib.sha256(str(index).encode()).hexdigest())
    total = len(ranked)
    floor = 1 if total >= 3 else 0
    n_test = max(round(total * test_fraction), floor if test_fraction > 0 else 0)
    n_val = max(round(total * val_fraction), floor if val_fraction > 0 else 0)
    split = {index: "train" for index in ranked[: total - n_val - n_test]}
    split |= {index: "val" for index in ranked[total - n_val - n_test : total - n_test]}
    split |= {index: "test" for index in ranked[total - n_test :]}
    return split


class ClipDataset(Dataset):
    """T-frame clips from episodes held as uint8 (decoded once per episode, never per clip; a large LeRobot
    dataset decodes episodes on demand into a bounded cache, see cola_train.data.frame_cache).

    Clip k of an episode starts at frame k * stride and takes every `frame_skip`-th frame. An item is a dict:
        video    float32 [T, 3, H, W] in [-1, 1] (resized to `size` with antialiasing when given)
        actions  float32 [T, A]  the real action at each clip frame (for probes and adapters; the LAM never
                                 sees them). Transition i of the clip is caused by actions[i].
        transition_actions  float32 [T-1, frame_skip, A]  every real action inside each transition: row j of
                                 transition i is the action taken at episode frame start + i * frame_skip + j
                                 (the ground-truth-action ceiling reads them).
        states   float32 [T, S]
        episode  int     the episode's index
        start    int     the clip's first frame in the episode
    `split` keeps only the episodes of that split (see `split_of`). Episodes shorter than one clip are skipped
    with a warning; if none is long enough, ValueError.
    """

    def __init__(
        self,
        episodes: Sequence[Episode],
        clip_length: int,
        frame_skip: int = 1,
        size: int | tuple[int, int] | None = None,
        split: str | None = None,
        split_fractions: tuple[float, float] = (0.1, 0.1),
        stride: int = 1,
    ) -> None:
        if clip_length < 1 or frame_skip < 1 or stride < 1:
            raise ValueError(
                "clip_length, frame_skip and stride must be positive, got "
                f"{clip_length}, {frame_skip}, {stride}"
            )
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be None or one of {SPLITS}, got {split!r}")
        if not episodes:
            raise ValueError("ClipDataset needs at least one episode; load some with load_episodes(path)")
        self.clip_length, self.frame_skip, self.stride = clip_length, frame_skip, stride
        self.size = (size, size) if isinstance(size, int) else size
        self.span = (clip_length - 1) * frame_skip + 1

        if split is not None:
            assignment = split_of([episode.index for episode in episodes], split_fractions)
            episodes = [episode for episode in episodes if assignment[episode.index] == split]
            if not episodes:
                raise ValueError(
                    f"split {split!r} holds no episodes of the {len(assignment)} given; use more episodes or "
                    "change split_fractions"
                )
        short = [episode for episode in episodes if len(episode) < self.span]
        self.episodes = [episode for episode in episodes if len(episode) >= self.span]
        if not self.episodes:
            longest = max(len(episode) for episode in episodes)
            raise ValueError(
                f"every episode is shorter than one clip ({self.span} frames = {clip_length} frames at skip "
                f"{frame_skip}); the longest has {longest} frames: lower clip_length or frame_skip, or "
                "collect longer episodes (--episode-length)"
            )
        if short:
            warnings.warn(
                f"skipping {len(short)} episode(s) shorter than one clip of {self.span} frames (indices "
                f"{[episode.index for episode in short][:10]})",
                stacklevel=2,
            )
        shapes = {episode.frames.shape[1:] for episode in self.episodes}
        widths = {(episode.actions.shape[1], episode.states.shape[1]) for episode in self.episodes}
        if len(shapes) > 1 and self.size is None:
            raise ValueError(
                f"episodes have different frame shapes {sorted(shapes)}; pass size= to resize them"
            )
        if len(widths) > 1:
            raise ValueError(
                f"episodes have different (action, state) widths {sorted(widths)}; load one dataset"
            )

        # Actions and states are small; copying them also detaches them from read-only Arrow buffers.
        self._actions = [torch.tensor(episode.actions) for episode in self.episodes]
        self._states = [torch.tensor(episode.states) for episode in self.episodes]
        counts = [(len(episode) - self.span) // stride + 1 for episode in self.episodes]
        self._ends = np.cumsum(counts).tolist()

    @property
    def episode_indices(self) -> list[int]:
        return [episode.index for episode in self.episodes]

    def __len__(self) -> int:
        return self._ends[-1]

    def __getitem__(self, item: int) -> dict[str, torch.Tensor | int]:
        if not -len(self) <= item < len(self):
            raise IndexError(f"clip {item} out of range for {len(self)} clips")
        item %= len(self)
        position = bisect.bisect_right(self._ends, item)
        start = (item - (self._ends[position - 1] if position else 0)) * self.stride
        rows = slice(start, start + self.span, self.frame_skip)
        # Indexing first: an episode's frames may be decoded on demand (cola_train.data.frame_cache).
        frames = torch.from_numpy(np.asarray(self.episodes[position].frames[rows]))
        video = frames.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        if self.size is not None and tuple(video.shape[-2:]) != self.size:
            video = F.interpolate(video, size=self.size, mode="bilinear", antialias=True, align_corners=False)
            video = video.clamp_(-1.0, 1.0)
        transitions = self._actions[position][start : start + self.span - 1]
        return {
            "video": video,
            "actions": self._actions[position][rows].clone(),
            "transition_actions": transitions.reshape(
                self.clip_length - 1, self.frame_skip, transitions.shape[-1]
            ).clone(),
            "states": self._states[position][rows].clone(),
            "episode": self.episodes[position].index,
            "start": start,
        }
