"""Where each episode of a LeRobot v3.0 dataset is: several episodes share one parquet and one mp4 file.

    meta/info.json                                   codebase_version "v3.0", fps, features, path templates
    meta/episodes/chunk-000/file-000.parquet         one row per episode: episode_index, length,
                                                     data/chunk_index, data/file_index,
                                                     videos/<camera>/{chunk_index, file_index, from_timestamp}
    data/chunk-000/file-000.parquet                  the rows of several episodes (episode_index column)
    videos/<camera>/chunk-000/file-000.mp4           their videos, one after the other

A row's frame is at from_timestamp + timestamp in its episode's video file (timestamps restart at 0 for
every episode).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from cola_train.data.episode import DatasetError
from cola_train.data.lerobot import EpisodeSource, _read_parquet

DATA_PATH_V3 = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH_V3 = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def episode_rows(root: Path) -> list[dict]:
    """The rows of meta/episodes/**/*.parquet, by episode index."""
    files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    if not files:
        raise DatasetError(
            f"{root / 'meta/episodes'} holds no parquet file; a LeRobot v3.0 dataset lists its episodes "
            "there (re-download the dataset)"
        )
    rows = [row for file in files for row in _read_parquet(file).to_pylist()]
    return sorted(rows, key=lambda row: int(row["episode_index"]))


def _required(row: dict, key: str, where: Path) -> int | float:
    value = row.get(key)
    if value is None:
        raise DatasetError(f"{where}: episode {row.get('episode_index')} has no {key!r} entry")
    return value


def v3_sources(root: Path, info: dict, camera: str, is_video: bool) -> list[EpisodeSource]:
    """One EpisodeSource per episode; each data file is read once and split by its episode_index column."""
    data_template = info.get("data_path", DATA_PATH_V3)
    video_template = info.get("video_path", VIDEO_PATH_V3)
    meta = root / "meta" / "episodes"
    tables: dict[Path, pa.Table] = {}
    sources = []
    for row in episode_rows(root):
        index = int(row["episode_index"])
        data_path = root / data_template.format(
            chunk_index=int(_required(row, "data/chunk_index", meta)),
            file_index=int(_required(row, "data/file_index", meta)),
        )
        if data_path not in tables:
            tables[data_path] = _read_parquet(data_path)
        table = tables[data_path]
        if "episode_index" not in table.column_names:
            raise DatasetError(f"{data_path} has no episode_index column; it is not a LeRobot v3.0 data file")
        rows = table.filter(pc.equal(table.column("episode_index"), index))
        if rows.num_rows == 0:
            raise DatasetError(f"{data_path} holds no row of episode {index}; re-download the dataset")
        video_path, offset = None, 0.0
        if is_video:
            video_path = root / video_template.format(
                video_key=camera,
                chunk_index=int(_required(row, f"videos/{camera}/chunk_index", meta)),
                file_index=int(_required(row, f"videos/{camera}/file_index", meta)),
            )
            if not video_path.is_file():
                raise DatasetError(f"missing video {video_path} for episode {index}; re-download the dataset")
            offset = float(_required(row, f"videos/{camera}/from_timestamp", meta))
        seed = row.get("seed")
        sources.append(
            EpisodeSource(index, None if seed is None else int(seed), rows, data_path, video_path, offset)
        )
    return sources
