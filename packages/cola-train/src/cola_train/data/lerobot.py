"""The LeRobot dataset layout, v2.1: the native on-disk format (v3.0 is read too: cola_train.data.lerobot_v3).

    meta/info.json                 codebase_version, fps, features, path templates, chunks_size
    meta/episodes.jsonl            one line per episode: episode_index, tasks, length (+ seed for PushT)
    meta/episodes_stats.jsonl      per-episode min / max / mean / std / count of each feature
    meta/tasks.jsonl               task_index -> task
    data/chunk-000/episode_000000.parquet                  one row per frame
    videos/chunk-000/<camera>/episode_000000.mp4           one video per episode and camera

Written with pyarrow and PyAV, read back the same way, so existing LeRobot v2.x datasets load as they are.
With ``use_videos=False`` the frames are PNG images in the parquet rows instead (LeRobot's "image" features,
as ``LeRobotDataset.create(use_videos=False)`` writes them): lossless and readable without PyAV.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cola_train.data.episode import DatasetError, Episode
from cola_train.data.frame_cache import DecodeCache, LazyFrames, decode_budget_bytes
from cola_train.data.video import CODEC, PIXEL_FORMAT, decode_video, encode_video

CODEBASE_VERSION = "v2.1"
CHUNKS_SIZE = 1000
DEFAULT_CAMERA = "observation.image"
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
STATE_KEY = "observation.state"
ACTION_KEY = "action"


@dataclass
class EpisodeRecord:
    """What meta/ keeps about one written episode."""

    index: int
    length: int
    seed: int | None
    stats: dict
    frame_shape: tuple[int, int]
    action_dim: int
    state_dim: int
    action_names: list[str]
    state_names: list[str]


def write_lerobot(
    root: str | Path,
    episodes: Sequence[Episode],
    fps: float,
    task: str = "",
    camera: str = DEFAULT_CAMERA,
    use_videos: bool = True,
) -> Path:
    """Write `episodes` as a LeRobot v2.1 dataset at `root` (a new or empty directory); frames as one mp4
    per episode, or with ``use_videos=False`` as PNG images in the parquet rows."""
    root = prepare_output_dir(root)
    if not episodes:
        raise ValueError("write_lerobot needs at least one episode")
    records, first = [], 0
    for episode in episodes:
        records.append(write_episode_files(root, episode, fps, first, camera, use_videos))
        first += len(episode)
    write_meta(root, records, fps, task, camera, use_videos)
    return root


def prepare_output_dir(root: str | Path) -> Path:
    """Create `root` for a new dataset; refuse one that already holds files rather than mix two datasets."""
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(
            f"{root} already exists and is not an empty directory; choose a new --out or remove it"
        )
    blocking = next((parent for parent in root.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise ValueError(f"cannot create {root}: {blocking} is a file, not a folder; choose another --out")
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_episode_files(
    root: Path,
    episode: Episode,
    fps: float,
    first_index: int,
    camera: str = DEFAULT_CAMERA,
    use_videos: bool = True,
) -> EpisodeRecord:
    """Write one episode's parquet rows and its video (or, with ``use_videos=False``, its frames as PNG
    images in the rows); `first_index` is its first frame's dataset-wide index."""
    length, chunk = len(episode), episode.index // CHUNKS_SIZE
    frame_index = np.arange(length, dtype=np.int64)
    values = {
        "timestamp": (frame_index / fps).astype(np.float32),
        "frame_index": frame_index,
        "episode_index": np.full(length, episode.index, dtype=np.int64),
        "index": first_index + frame_index,
        "task_index": np.zeros(length, dtype=np.int64),
        "next.done": frame_index == length - 1,
    }
    values |= {
        key: array
        for key, array in ((STATE_KEY, episode.states), (ACTION_KEY, episode.actions))
        if array.shape[1]
    }
    columns = {
        key: pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])
        if array.ndim == 2
        else pa.array(array)
        for key, array in values.items()
    }
    if not use_videos:
        columns[camera] = _png_column(episode.frames)
    data_path = root / DATA_PATH.format(episode_chunk=chunk, episode_index=episode.index)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), data_path)
    if use_videos:
        video_path = root / VIDEO_PATH.format(
            episode_chunk=chunk, video_key=camera, episode_index=episode.index
        )
        encode_video(video_path, episode.frames, fps)
    return EpisodeRecord(
        index=episode.index,
        length=length,
        seed=episode.seed,
        stats=_episode_stats(episode.frames, camera, values),
        frame_shape=episode.frames.shape[1:3],
        action_dim=episode.actions.shape[1],
        state_dim=episode.states.shape[1],
        action_names=list(episode.action_names),
        state_names=list(episode.state_names),
    )


def write_meta(
    root: Path,
    records: Sequence[EpisodeRecord],
    fps: float,
    task: str,
    camera: str,
    use_videos: bool = True,
) -> None:
    """Write meta/: info.json, episodes.jsonl, episodes_stats.jsonl and tasks.jsonl; ``use_videos`` says
    how :func:`write_episode_files` stored the frames."""
    records = sorted(records, key=lambda record: record.index)
    first = records[0]
    layouts = {(r.frame_shape, r.action_dim, r.state_dim) for r in records}
    if len(layouts) > 1:
        raise ValueError(
            f"episodes differ in (frame shape, action width, state width): {sorted(layouts)}; a LeRobot "
            "dataset needs one layout, so write them as separate datasets"
        )
    height, width = first.frame_shape
    scalar = {"shape": [1], "names": None}
    image = {"shape": [height, width, 3], "names": ["height", "width", "channel"]}
    video_info = {
        "video.fps": float(fps),
        "video.height": height,
        "video.width": width,
        "video.channels": 3,
        "video.codec": CODEC,
        "video.pix_fmt": PIXEL_FORMAT,
        "video.is_depth_map": False,
        "has_audio": False,
    }
    features: dict[str, dict] = {
        camera: {"dtype": "video", **image, "info": video_info} if use_videos else {"dtype": "image", **image}
    }
    for key, columns, names in (
        (STATE_KEY, first.state_dim, first.state_names),
        (ACTION_KEY, first.action_dim, first.action_names),
    ):
        if columns:
            features[key] = {"dtype": "float32", "shape": [columns], "names": names or None}
    features |= {
        "timestamp": {"dtype": "float32", **scalar},
        "frame_index": {"dtype": "int64", **scalar},
        "episode_index": {"dtype": "int64", **scalar},
        "index": {"dtype": "int64", **scalar},
        "task_index": {"dtype": "int64", **scalar},
        "next.done": {"dtype": "bool", **scalar},
    }
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": "unknown",
        "total_episodes": len(records),
        "total_frames": sum(record.length for record in records),
        "total_tasks": 1,
        "total_videos": len(records) if use_videos else 0,
        "total_chunks": max(record.index for record in records) // CHUNKS_SIZE + 1,
        "chunks_size": CHUNKS_SIZE,
        "fps": fps,
        "splits": {"train": f"0:{len(records)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if use_videos else None,
        "features": features,
    }
    meta = root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "info.json").write_text(json.dumps(info, indent=4))
    (meta / "tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": task}) + "\n")
    episode_lines = []
    for record in records:
        line = {"episode_index": record.index, "tasks": [task], "length": record.length}
        if record.seed is not None:
            line["seed"] = record.seed
        episode_lines.append(json.dumps(line))
    (meta / "episodes.jsonl").write_text("\n".join(episode_lines) + "\n")
    stats_lines = [json.dumps({"episode_index": record.index, "stats": record.stats}) for record in records]
    (meta / "episodes_stats.jsonl").write_text("\n".join(stats_lines) + "\n")


def _png_column(frames: np.ndarray) -> pa.Array:
    """uint8 [T, H, W, 3] frames as LeRobot's image cells: structs of PNG bytes and a (null) path."""
    from PIL import Image

    cells = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG")
        cells.append({"bytes": buffer.getvalue(), "path": None})
    return pa.array(cells, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))


def _episode_stats(frames: np.ndarray, camera: str, values: dict[str, np.ndarray]) -> dict:
    """LeRobot's per-episode statistics: per column of each feature, images per channel ([3, 1, 1])."""
    stats = {camera: _image_stats(frames)}
    for key, array in values.items():
        array = array.reshape(len(array), -1).astype(np.float64)
        summary = {"min": array.min(0), "max": array.max(0), "mean": array.mean(0), "std": array.std(0)}
        stats[key] = {name: value.tolist() for name, value in summary.items()} | {"count": [len(array)]}
    return stats


def _image_stats(frames: np.ndarray) -> dict:
    """Per-channel stats of uint8 frames in [0, 1], from 256-bin histograms: exact, and far cheaper than
    reductions over a float copy of every pixel."""
    levels = np.arange(256) / 255.0
    histograms = np.stack([np.bincount(frames[..., c].ravel(), minlength=256) for c in range(3)])
    count = histograms.sum(axis=1)
    mean = histograms @ levels / count
    std = np.sqrt(np.maximum(histograms @ levels**2 / count - mean**2, 0.0))
    present = histograms > 0
    minimum = levels[present.argmax(axis=1)]
    maximum = levels[255 - present[:, ::-1].argmax(axis=1)]
    stats = {"min": minimum, "max": maximum, "mean": mean, "std": std}
    return {name: value.reshape(3, 1, 1).tolist() for name, value in stats.items()} | {"count": [len(frames)]}


def read_lerobot(root: str | Path, camera: str | None = None) -> list[Episode]:
    """Load every episode of a LeRobot v2.x (one parquet and video per episode) or v3.0 (several episodes per
    parquet and mp4 file, cola_train.data.lerobot_v3) dataset.

    `camera` picks the video (or image) feature to load as frames; default: the first in info.json. Video
    frames are decoded here, into arrays, when they all fit the decode budget (cola_train.data.frame_cache);
    a larger dataset's episodes hold LazyFrames, decoded when a clip needs them into a bounded cache.
    """
    from cola_train.data.lerobot_v3 import v3_sources

    root = Path(root)
    info = _read_info(root)
    features = info["features"]
    cameras = [key for key, feature in features.items() if feature.get("dtype") in ("video", "image")]
    if not cameras:
        raise DatasetError(
            f"{root / 'meta/info.json'} declares no video or image feature; nothing to train on"
        )
    if camera is None:
        camera = cameras[0]
    elif camera not in cameras:
        raise DatasetError(f"{root / 'meta/info.json'} has no camera {camera!r}; it has {cameras}")
    is_video = features[camera]["dtype"] == "video"
    sources = (
        v3_sources(root, info, camera, is_video)
        if str(info["codebase_version"]).startswith("v3")
        else _v2_sources(root, info, camera, is_video)
    )
    fps = float(info["fps"])
    height, width = _frame_size(features[camera]) if is_video else (0, 0)
    action_names = _feature_names(features.get(ACTION_KEY))
    state_names = _feature_names(features.get(STATE_KEY))
    cache = DecodeCache(decode_budget_bytes())
    episodes = []
    for source in sources:
        table, length = source.table, source.table.num_rows
        actions = _float_matrix(table, ACTION_KEY, length, source.data_path)
        states = _float_matrix(table, STATE_KEY, length, source.data_path)
        if source.video_path is None:
            frames: np.ndarray | LazyFrames = _image_column(table, camera, source.data_path)
        else:
            positions = _video_positions(table, fps, source.video_offset)
            frames = LazyFrames(
                cache,
                f"{source.video_path} (episode {source.index})",
                partial(_decode_positions, source.video_path, positions),
                (length, height, width, 3),
            )
        episodes.append(
            Episode(
                frames=frames,
                actions=actions,
                states=states,
                index=source.index,
                seed=source.seed,
                action_names=action_names if len(action_names) == actions.shape[1] else [],
                state_names=state_names if len(state_names) == states.shape[1] else [],
                source=source.data_path,
            )
        )
    lazy = [episode for episode in episodes if isinstance(episode.frames, LazyFrames)]
    if sum(int(np.prod(episode.frames.shape)) for episode in lazy) <= cache.max_bytes:
        # Everything fits: decode now (a bad video is reported at load time) and hold plain arrays, as for
        # every dataset before the cache existed.
        for episode in lazy:
            episode.frames = episode.frames.load()
    return episodes


@dataclass(frozen=True)
class EpisodeSource:
    """Where one episode is: its parquet rows, and its video with the time it starts at there."""

    index: int
    seed: int | None
    table: pa.Table
    data_path: Path
    video_path: Path | None
    video_offset: float = 0.0


def _v2_sources(root: Path, info: dict, camera: str, is_video: bool) -> list[EpisodeSource]:
    chunks_size = int(info.get("chunks_size", CHUNKS_SIZE))
    data_template = info.get("data_path", DATA_PATH)
    video_template = info.get("video_path", VIDEO_PATH)
    sources = []
    for record in _episode_records(root, info):
        index = int(record["episode_index"])
        chunk = index // chunks_size
        data_path = root / data_template.format(episode_chunk=chunk, episode_index=index)
        video_path = None
        if is_video:
            video_path = root / video_template.format(
                episode_chunk=chunk, video_key=camera, episode_index=index
            )
            if not video_path.is_file():
                raise DatasetError(f"missing video {video_path} for episode {index}; re-download the dataset")
        table = _read_parquet(data_path)
        sources.append(EpisodeSource(index, record.get("seed"), table, data_path, video_path))
    return sources


def _frame_size(feature: dict) -> tuple[int, int]:
    """(height, width) of a camera feature from its shape and, where given, its axis names."""
    shape, names = list(feature.get("shape", [])), feature.get("names")
    if isinstance(names, list) and len(names) == len(shape) and {"height", "width"} <= set(names):
        return int(shape[names.index("height")]), int(shape[names.index("width")])
    if len(shape) != 3:
        raise DatasetError(f"camera feature shape {shape} is not [height, width, channels]")
    return int(shape[0]), int(shape[1])


def _read_info(root: Path) -> dict:
    path = root / "meta" / "info.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"cannot read {path} ({error}); is {root} a LeRobot dataset?") from error
    if not isinstance(info, dict):
        raise DatasetError(
            f"{path} must hold a JSON object (codebase_version, fps, features, ...), got a "
            f"{type(info).__name__}; re-create or re-download the dataset"
        )
    version = str(info.get("codebase_version", ""))
    if not version.startswith(("v2", "v3")):
        raise DatasetError(
            f"{path} says codebase_version {version!r}; this reader handles the LeRobot v2.x layout (one "
            "parquet and one video per episode) and v3.0 (several episodes per file)"
        )
    for key in ("fps", "features"):
        if key not in info:
            raise DatasetError(f"{path} has no {key!r} entry; it is not a complete LeRobot info.json")
    _check_info_fields(info, path)
    return info


def _check_info_fields(info: dict, path: Path) -> None:
    """Every info.json field the reader uses, with the value it must have (fps 0 made every frame frame 0)."""
    fps = info["fps"]
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps < float("inf"):
        raise DatasetError(f"{path}: 'fps' must be a positive number of frames per second, got {fps!r}")
    features = info["features"]
    if not isinstance(features, dict) or not all(isinstance(f, dict) for f in features.values()):
        raise DatasetError(f"{path}: 'features' must map each feature name to an object, got {features!r}")
    for key, low in (("chunks_size", 1), ("total_episodes", 0)):
        value = info.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DatasetError(f"{path}: {key!r} must be an integer >= {low}, got {value!r}")
    for key in ("data_path", "video_path"):
        value = info.get(key, "")
        # LeRobot writes a null video_path for a dataset whose cameras are all images (use_videos=False).
        videoless = key == "video_path" and value is None
        if videoless and not any(f.get("dtype") == "video" for f in features.values()):
            continue
        if not isinstance(value, str):
            raise DatasetError(f"{path}: {key!r} must be a path template string, got {value!r}")


def _episode_records(root: Path, info: dict) -> list[dict]:
    path = root / "meta" / "episodes.jsonl"
    if not path.is_file():
        return [{"episode_index": index} for index in range(int(info.get("total_episodes", 0)))]
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(
                f"{path} line {number} is not valid JSON ({error}); re-create or re-download it"
            ) from error
        index = record.get("episode_index") if isinstance(record, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise DatasetError(
                f"{path} line {number} has no integer 'episode_index' >= 0 (got {line[:80]!r}); every line "
                "must name its episode: re-create or re-download the dataset"
            )
        records.append(record)
    return records


def _read_parquet(path: Path) -> pa.Table:
    if not path.is_file():
        raise DatasetError(f"missing parquet file {path}; re-create or re-download the dataset")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise DatasetError(
            f"could not read parquet file {path} ({error}); the file is corrupt or truncated: re-create it "
            "(re-run the collection or re-download the dataset)"
        ) from error


def _float_matrix(table: pa.Table, key: str, length: int, path: Path) -> np.ndarray:
    """A list-valued (or scalar) column as float32 [length, D]; [length, 0] when the column is absent."""
    if key not in table.column_names:
        return np.zeros((length, 0), dtype=np.float32)
    column = table.column(key).combine_chunks()
    if (
        pa.types.is_list(column.type)
        or pa.types.is_fixed_size_list(column.type)
        or pa.types.is_large_list(column.type)
    ):
        values = np.asarray(column.flatten(), dtype=np.float32)
        if length and values.size % length:
            raise DatasetError(f"{path}: column {key!r} has rows of different widths; expected one width")
        return values.reshape(length, -1)
    return np.asarray(column, dtype=np.float32).reshape(length, 1)


def _video_positions(table: pa.Table, fps: float, offset: float) -> np.ndarray:
    """The video frame of each parquet row, located by its timestamp (plus the episode's start time in a
    multi-episode video)."""
    if "timestamp" in table.column_names:
        seconds = np.asarray(table.column("timestamp"), dtype=np.float64) + offset
    else:
        seconds = np.arange(table.num_rows) / fps + offset
    return np.rint(seconds * fps).astype(np.int64)


def _decode_positions(path: Path, positions: np.ndarray) -> np.ndarray:
    """The frames at `positions` of the video at `path`, decoding only the range they span."""
    first, last = int(positions.min()), int(positions.max())
    video = decode_video(path, first, last + 1)
    if first + len(video) <= last:
        raise DatasetError(
            f"video {path} has {first + len(video)} frames but the episode's parquet rows need {last + 1}; "
            "the video is truncated: re-create it (re-run the collection or re-download the dataset)"
        )
    if first == 0 and np.array_equal(positions, np.arange(len(video))):
        return video
    return video[positions - first]


def _image_column(table: pa.Table, key: str, path: Path) -> np.ndarray:
    """Frames stored in parquet as encoded images (LeRobot's "image" dtype: structs of PNG/JPEG bytes)."""
    from PIL import Image

    frames = []
    for cell in table.column(key).to_pylist():
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if not data:
            raise DatasetError(f"{path}: column {key!r} holds an empty image; re-create the dataset")
        frames.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    return np.stack(frames)


def _feature_names(feature: dict | None) -> list[str]:
    """LeRobot writes names as a list, or as a dict holding one list (e.g. {"motors": [...]})."""
    names = (feature or {}).get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    return [str(name) for name in names] if isinstance(names, list) else []
