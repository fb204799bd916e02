"""Data for CoLA: PushT collection, the LeRobot / HDF5 / mp4 formats, and training clips."""

from cola_train.data.clips import ClipDataset, split_of
from cola_train.data.collect import collect_pusht
from cola_train.data.episode import DatasetError, Episode
from cola_train.data.lerobot import read_lerobot, write_lerobot
from cola_train.data.load import detect_format, load_episodes
from cola_train.data.pusht import make_pusht_env, pusht_state, render_frame, restore_state, rollout_pusht

__all__ = [
    "ClipDataset",
    "DatasetError",
    "Episode",
    "collect_pusht",
    "detect_format",
    "load_episodes",
    "make_pusht_env",
    "pusht_state",
    "read_lerobot",
    "render_frame",
    "restore_state",
    "rollout_pusht",
    "split_of",
    "write_lerobot",
]
