"""Data for CoLA: PushT collection, the LeRobot / HDF5 / mp4 formats, and training clips."""

from typing import Any

from cola_train.data.clips import ClipDataset, split_of
from cola_train.data.episode import DatasetError, Episode
from cola_train.data.lerobot import read_lerobot, write_lerobot
from cola_train.data.load import detect_format, load_episodes
from cola_train.data.optional import lazy_attribute

# Imported on first use: they need the `cola-train[pusht]` extra.
_PUSHT = {
    "collect_pusht": "cola_train.data.collect",
    **{
        name: "cola_train.data.pusht"
        for name in ("make_pusht_env", "pusht_state", "render_frame", "restore_state", "rollout_pusht")
    },
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name, _PUSHT)


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
