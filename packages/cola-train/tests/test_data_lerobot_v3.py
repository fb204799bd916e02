"""LeRobot v3.0 (several episodes per parquet and mp4 file), a Hub dataset id, and the bounded decode cache
that keeps a large dataset from being held in memory all at once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from cola_train.data import ClipDataset, DatasetError, Episode, load_episodes
from cola_train.data import load as load_module
from cola_train.data.frame_cache import DecodeCache, LazyFrames
from cola_train.data.video import encode_video
from test_data_formats import assert_same_episode, make_episode

FPS = 10
CAMERA = "observation.images.top"
# (chunk, file) of each episode: episodes 0 and 1 share a file, episode 2 has the next one.
FILES = {0: (0, 0), 1: (0, 0), 2: (0, 1)}


def _list_column(array: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])


def write_v3(root: Path, episodes: list[Episode]) -> Path:
    """A LeRobot v3.0 dataset laid out as LeRobot writes it (paths, meta/episodes columns, per-episode
    timestamps from 0, each episode's video at an offset in its file)."""
    by_file: dict[tuple[int, int], list[Episode]] = {}
    for episode in episodes:
        by_file.setdefault(FILES[episode.index], []).append(episode)
    meta_rows, first_index = [], 0
    for (chunk, file), members in by_file.items():
        columns: dict[str, list[np.ndarray]] = {}
        offset = 0.0
        for episode in members:
            length = len(episode)
            values = {
                "timestamp": (np.arange(length) / FPS).astype(np.float32),
                "frame_index": np.arange(length, dtype=np.int64),
                "episode_index": np.full(length, episode.index, dtype=np.int64),
                "index": first_index + np.arange(length, dtype=np.int64),
                "task_index": np.zeros(length, dtype=np.int64),
                "observation.state": episode.states,
                "action": episode.actions,
            }
            for key, value in values.items():
                columns.setdefault(key, []).append(value)
            meta_rows.append(
                {
                    "episode_index": episode.index,
                    "tasks": ["push"],
                    "length": length,
                    "data/chunk_index": chunk,
                    "data/file_index": file,
                    "dataset_from_index": first_index,
                    "dataset_to_index": first_index + length,
                    f"videos/{CAMERA}/chunk_index": chunk,
                    f"videos/{CAMERA}/file_index": file,
                    f"videos/{CAMERA}/from_timestamp": offset,
                    f"videos/{CAMERA}/to_timestamp": offset + length / FPS,
                }
            )
            offset += length / FPS
            first_index += length
        table = {
            key: _list_column(np.concatenate(parts))
            if parts[0].ndim == 2
            else pa.array(np.concatenate(parts))
            for key, parts in columns.items()
        }
        data = root / f"data/chunk-{chunk:03d}/file-{file:03d}.parquet"
        data.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(table), data)
        video = root / f"videos/{CAMERA}/chunk-{chunk:03d}/file-{file:03d}.mp4"
        encode_video(video, np.concatenate([episode.frames for episode in members]), FPS)
    meta = root / "meta/episodes/chunk-000/file-000.parquet"
    meta.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(meta_rows), meta)
    pq.write_table(pa.table({"task_index": [0], "task": ["push"]}), root / "meta/tasks.parquet")
    size = int(episodes[0].frames.shape[1])
    info = {
        "codebase_version": "v3.0",
        "robot_type": "unknown",
        "total_episodes": len(episodes),
        "total_frames": first_index,
        "total_tasks": 1,
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "fps": FPS,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {
            CAMERA: {"dtype": "video", "shape": [size, size, 3], "names": ["height", "width", "channels"]},
            "observation.state": {"dtype": "float32", "shape": [2], "names": ["s0", "s1"]},
            "action": {"dtype": "float32", "shape": [3], "names": ["a0", "a1", "a2"]},
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "frame_index": {"dtype": "int64", "shape": [1], "names": None},
            "episode_index": {"dtype": "int64", "shape": [1], "names": None},
            "index": {"dtype": "int64", "shape": [1], "names": None},
            "task_index": {"dtype": "int64", "shape": [1], "names": None},
        },
    }
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    return root


@pytest.fixture(scope="module")
def v3_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Episode]]:
    episodes = [make_episode(0, 12), make_episode(1, 9), make_episode(2, 15)]
    return write_v3(tmp_path_factory.mktemp("v3") / "ds", episodes), episodes


def test_v3_episodes_read_back_from_shared_files(v3_dataset: tuple[Path, list[Episode]]) -> None:
    root, written = v3_dataset
    read = load_episodes(root)
    assert [episode.index for episode in read] == [0, 1, 2]
    for got, want in zip(read, written, strict=True):
        assert isinstance(got.frames, np.ndarray)  # small: decoded at load time, as v2.1
        assert_same_episode(got, want)
        assert got.action_names == ["a0", "a1", "a2"] and got.state_names == ["s0", "s1"]


def test_v3_missing_episode_index_and_video_are_clear_errors(v3_dataset, tmp_path: Path) -> None:
    import shutil

    root = Path(shutil.copytree(v3_dataset[0], tmp_path / "copy"))
    (root / f"videos/{CAMERA}/chunk-000/file-001.mp4").unlink()
    with pytest.raises(DatasetError, match=r"missing video .*file-001\.mp4 for episode 2"):
        load_episodes(root)
    shutil.rmtree(root / "meta/episodes")
    with pytest.raises(DatasetError, match="meta/episodes holds no parquet"):
        load_episodes(root)


def test_a_dataset_over_the_budget_decodes_per_episode_into_a_bounded_cache(
    v3_dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, written = v3_dataset
    eager = ClipDataset(load_episodes(root), clip_length=4, frame_skip=2)
    one_episode = 15 * 32 * 32 * 3  # the largest episode's frames, in bytes
    monkeypatch.setenv("COLA_DECODE_CACHE_MB", str(1.5 * one_episode / 2**20))
    episodes = load_episodes(root)
    assert all(isinstance(episode.frames, LazyFrames) for episode in episodes)
    cache: DecodeCache = episodes[0].frames.cache
    assert cache.decodes == 0  # nothing decoded until a clip needs it
    lazy = ClipDataset(episodes, clip_length=4, frame_skip=2)
    assert len(lazy) == len(eager)
    for _ in range(2):  # twice round every clip: episodes are evicted and decoded again
        for item in range(len(lazy)):
            assert torch.equal(lazy[item]["video"], eager[item]["video"])
            assert cache.cached_bytes <= 1.5 * one_episode
    assert cache.decodes == 6  # each of the 3 episodes decoded once per pass, never once per clip
    for got, want in zip(episodes, written, strict=True):
        assert_same_episode(
            Episode(np.asarray(got.frames), got.actions, got.states, got.index, got.seed), want
        )


def test_a_hub_dataset_id_is_downloaded_as_a_dataset_repo(
    v3_dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, written = v3_dataset
    calls = []

    def snapshot_download(repo_id: str, repo_type: str) -> str:
        calls.append((repo_id, repo_type))
        return str(root)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    episodes = load_episodes("someone/pusht-v3")
    assert calls == [("someone/pusht-v3", "dataset")] and len(episodes) == len(written)
    assert load_module.resolve_dataset(root) == root  # a local path is never looked up on the Hub
    assert calls == [("someone/pusht-v3", "dataset")]
