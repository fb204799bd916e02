"""Parallel PushT collection into a LeRobot v2.1 dataset."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from cola_train.data.lerobot import (
    DEFAULT_CAMERA,
    EpisodeRecord,
    prepare_output_dir,
    write_episode_files,
    write_meta,
)
from cola_train.data.pusht import FPS, FRAME_SIZE, TASK, make_pusht_env, rollout_pusht

DEFAULT_EPISODE_LENGTH = 200
TEMP_PREFIX = ".tmp-"

_worker_env = None  # one env per worker process, reused across its episodes (each reset rebuilds the physics)


def episode_seeds(seed: int, episode: int) -> tuple[int, int]:
    """(reset seed, policy seed) of one episode: a function of the run seed and the episode index alone, so
    the data do not depend on how many workers there are or in which order they finish."""
    reset_seed, policy_seed = np.random.SeedSequence([seed, episode]).generate_state(2)
    return int(reset_seed), int(policy_seed)


def collect_pusht(
    out_dir: str | Path,
    episodes: int,
    seed: int = 0,
    episode_length: int = DEFAULT_EPISODE_LENGTH,
    workers: int | None = None,
    progress: bool = True,
    frame_size: int = FRAME_SIZE,
    explore: float = 0.0,
    use_videos: bool = True,
) -> Path:
    """Collect `episodes` PushT episodes of `episode_length` frames with the scripted pusher into `out_dir`.

    `explore` is the share of the pusher's plans that are random wanders instead of pushes (see
    `cola_train.data.pusht_policy`). Frames go to one lossless mp4 per episode, or with ``use_videos=False``
    into the parquet rows as PNG images (no PyAV needed to write or read them). Deterministic for a seed
    whatever `workers` is (default: one per CPU core). Returns the dataset path.
    """
    if episodes < 1 or episode_length < 2:
        raise ValueError(f"need episodes >= 1 and episode_length >= 2, got {episodes} and {episode_length}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if not 0.0 <= explore <= 1.0:
        raise ValueError(f"explore must be in [0, 1] (the share of random wanders), got {explore}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    out = prepare_output_dir(out_dir)
    # Episodes go to a hidden sibling that becomes `out` only once meta/ is written, so a killed collection
    # never leaves a folder that reads as a (partial) dataset.
    staging = out.parent / f"{TEMP_PREFIX}{out.name}"
    shutil.rmtree(staging, ignore_errors=True)  # a previous collection into `out` that was killed
    staging.mkdir()
    try:
        _collect_into(
            staging, episodes, seed, episode_length, workers, progress, frame_size, explore, use_videos
        )
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _collect_into(
    out: Path,
    episodes: int,
    seed: int,
    episode_length: int,
    workers: int | None,
    progress: bool,
    frame_size: int,
    explore: float,
    use_videos: bool,
) -> None:
    jobs = [
        (out, index, *episode_seeds(seed, index), episode_length, frame_size, explore, use_videos)
        for index in range(episodes)
    ]
    workers = min(workers or os.cpu_count() or 1, episodes)
    bar = tqdm(total=episodes * episode_length, unit="frame", desc="collect pusht", disable=not progress)
    records: list[EpisodeRecord] = []
    with bar:
        if workers == 1:
            for job in jobs:
                records.append(_collect_episode(job))
                bar.update(episode_length)
        else:
            # fork where there is one: spawn would re-import torch in every worker for nothing.
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            with multiprocessing.get_context(method).Pool(workers, initializer=_init_worker) as pool:
                for record in pool.imap_unordered(_collect_episode, jobs):
                    records.append(record)
                    bar.update(episode_length)
    write_meta(out, records, FPS, TASK, camera=DEFAULT_CAMERA, use_videos=use_videos)


def _init_worker() -> None:
    # The workers already fill the cores; OpenCV's own resize threads would only contend with them.
    cv2.setNumThreads(1)


def _collect_episode(job: tuple[Path, int, int, int, int, int, float, bool]) -> EpisodeRecord:
    global _worker_env
    out, index, reset_seed, policy_seed, length, frame_size, explore, use_videos = job
    if _worker_env is None or _worker_env.observation_width != frame_size:
        _worker_env = make_pusht_env(frame_size)
    episode = rollout_pusht(
        reset_seed, policy_seed, length, index=index, frame_size=frame_size, env=_worker_env, explore=explore
    )
    return write_episode_files(out, episode, FPS, first_index=index * length, use_videos=use_videos)
