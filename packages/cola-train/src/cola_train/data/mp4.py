"""A folder of plain mp4 videos: one action-free episode per file (actions and states have 0 columns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cola_train.data.episode import DatasetError, Episode
from cola_train.data.video import decode_video


def find_videos(root: Path) -> list[Path]:
    """The mp4 files under `root` (recursively) in sorted path order, which gives the episode indices."""
    return sorted(path for path in root.rglob("*") if path.suffix.lower() == ".mp4" and path.is_file())


def read_mp4_folder(root: str | Path) -> list[Episode]:
    """Decode every mp4 under `root` into an action-free episode."""
    root = Path(root)
    videos = find_videos(root)
    if not videos:
        raise DatasetError(f"{root} holds no .mp4 files; put one video per episode in it")
    episodes = []
    for index, path in enumerate(videos):
        frames = decode_video(path)
        empty = np.zeros((len(frames), 0), dtype=np.float32)
        episodes.append(Episode(frames=frames, actions=empty, states=empty.copy(), index=index, source=path))
    return episodes
