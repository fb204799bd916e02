"""One entry point that recognises the dataset format at a path."""

from __future__ import annotations

from pathlib import Path

from cola_train.data.episode import DatasetError, Episode
from cola_train.data.hdf5 import read_hdf5
from cola_train.data.lerobot import read_lerobot
from cola_train.data.mp4 import find_videos, read_mp4_folder

HDF5_SUFFIXES = (".hdf5", ".h5", ".he5")


def resolve_dataset(path: str | Path) -> Path:
    """`path` itself when it exists, else (when it reads as ORG/NAME) the local snapshot of that Hugging Face
    Hub dataset repo, downloaded once into the Hub cache."""
    local = Path(path)
    text = str(path)
    if local.exists() or text.count("/") != 1 or text.startswith((".", "/", "~")):
        return local
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=text, repo_type="dataset"))
    except Exception as error:  # offline, no such repo, HTTP errors: all mean "not a dataset here"
        raise DatasetError(
            f"{text} does not exist here, and as a Hub dataset id it could not be downloaded "
            f"({type(error).__name__}: {error}); give a local dataset or a Hub dataset repo id"
        ) from error


def detect_format(path: str | Path) -> str:
    """ "lerobot", "hdf5" or "mp4" for what `path` holds; DatasetError if none of them."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(
            f"{path} does not exist; give a LeRobot dataset directory, an HDF5 file (or a directory of "
            "them), or a directory of mp4 videos (make a PushT dataset with "
            "`cola-train collect pusht --out DIR`)"
        )
    if path.is_file():
        if path.suffix.lower() in HDF5_SUFFIXES:
            return "hdf5"
        raise DatasetError(
            f"{path} is a file of an unknown kind; expected an HDF5 file ({', '.join(HDF5_SUFFIXES)}) or a "
            "directory holding a LeRobot dataset or mp4 videos"
        )
    if (path / "meta" / "info.json").is_file():
        return "lerobot"
    if _partial_lerobot(path):
        raise DatasetError(
            f"{path} looks like a LeRobot dataset without its meta/info.json (it has meta/, data/chunk-* or "
            "videos/chunk-*): a collection or download that did not finish. Delete it and collect or "
            "download it again"
        )
    if _hdf5_files(path):
        return "hdf5"
    if find_videos(path):
        return "mp4"
    raise DatasetError(
        f"{path} holds no dataset: no meta/info.json (LeRobot), no .hdf5 file (robomimic/LIBERO) and no .mp4 "
        "video; point at a dataset directory or make one with `cola-train collect pusht --out DIR`"
    )


def load_episodes(path: str | Path, camera: str | None = None) -> list[Episode]:
    """Every episode at `path`: a LeRobot v2.x / v3.0 dataset (a directory, or a Hub dataset id ORG/NAME),
    robomimic/LIBERO HDF5 or mp4 videos. Frames are held in memory, except a LeRobot dataset too large for
    the decode budget (see read_lerobot).

    `camera` picks the image stream where a format holds several (LeRobot feature key or HDF5 obs key).
    A directory of HDF5 files loads them all, in name order, with running episode indices.
    """
    path = resolve_dataset(path)
    kind = detect_format(path)
    if kind == "lerobot":
        return read_lerobot(path, camera)
    if kind == "mp4":
        return read_mp4_folder(path)
    episodes: list[Episode] = []
    for file in [path] if path.is_file() else _hdf5_files(path):
        episodes += read_hdf5(file, camera, first_index=len(episodes))
    return episodes


def _partial_lerobot(root: Path) -> bool:
    """A folder with LeRobot's layout but no info.json: read as mp4 videos it would train action-free."""
    return (root / "meta").is_dir() or any(root.glob("data/chunk-*")) or any(root.glob("videos/chunk-*"))


def _hdf5_files(root: Path) -> list[Path]:
    return sorted(file for file in root.iterdir() if file.is_file() and file.suffix.lower() in HDF5_SUFFIXES)
