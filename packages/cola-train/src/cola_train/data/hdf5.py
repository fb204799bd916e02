"""The robomimic / LIBERO HDF5 layout, read with h5py.

    data/demo_0/obs/<camera>_rgb      uint8 [T, H, W, 3]   (robomimic also names cameras <camera>_image)
    data/demo_0/actions               float [T, A]
    data/demo_0/obs/<name>            low-dimensional observations; those whose name holds "state" (LIBERO's
                                      ee_states, gripper_states, joint_states) become the episode's states

LIBERO stores its camera images upside down; they are loaded as stored.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np

from cola_train.data.episode import DatasetError, Episode

CAMERA_SUFFIXES = ("_rgb", "_image")


def read_hdf5(path: str | Path, camera: str | None = None, first_index: int = 0) -> list[Episode]:
    """Load every demo in one robomimic/LIBERO HDF5 file, in demo-number order.

    `camera` names the image key under obs/ (e.g. "agentview_rgb"); default: the first, sorted by name.
    Episode indices count up from `first_index`.
    """
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise DatasetError(
            f"could not open HDF5 file {path} ({error}); the file is corrupt or not HDF5: re-create or "
            "re-download it"
        ) from error
    with handle:
        if "data" not in handle:
            raise DatasetError(
                f"{path} has no 'data' group (it has {sorted(handle.keys())}); expected the robomimic/LIBERO "
                "layout data/demo_N/obs/<camera>_rgb and data/demo_N/actions"
            )
        demos = sorted(handle["data"].keys(), key=_demo_number)
        if not demos:
            raise DatasetError(f"{path}: data/ holds no demos; expected data/demo_0, data/demo_1, ...")
        return [
            _read_demo(handle["data"][name], f"{path}:data/{name}", camera, first_index + number)
            for number, name in enumerate(demos)
        ]


def _read_demo(demo: h5py.Group, where: str, camera: str | None, index: int) -> Episode:
    if "obs" not in demo or "actions" not in demo:
        raise DatasetError(
            f"{where} lacks {'obs' if 'obs' not in demo else 'actions'}: it has {sorted(demo.keys())}; "
            "expected obs/<camera>_rgb and actions (the robomimic/LIBERO layout)"
        )
    obs = demo["obs"]
    cameras = sorted(key for key in obs if key.endswith(CAMERA_SUFFIXES))
    if camera is None and cameras:
        camera = cameras[0]
    if camera is None or camera not in obs:
        raise DatasetError(
            f"{where}/obs has no camera {'key ending in _rgb or _image' if camera is None else repr(camera)}"
            f": it has {sorted(obs.keys())}; pass camera= one of the image keys"
        )
    frames = np.asarray(obs[camera])
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DatasetError(
            f"{where}/obs/{camera} is {frames.dtype} {list(frames.shape)}; expected uint8 [T, H, W, 3] RGB "
            "images"
        )
    actions = np.asarray(demo["actions"], dtype=np.float32).reshape(len(demo["actions"]), -1)
    state_keys = sorted(key for key in obs if "state" in key and key not in cameras)
    states = []
    for key in state_keys:
        block = np.asarray(obs[key], dtype=np.float32)
        if len(block) != len(frames):
            raise DatasetError(
                f"{where}/obs/{key}: {len(block)} rows for {len(frames)} frames; expected one per frame"
            )
        states.append(block.reshape(len(frames), -1))
    state_names = [
        f"{key}_{column}"
        for key, block in zip(state_keys, states, strict=True)
        for column in range(block.shape[1])
    ]
    if len(actions) != len(frames):
        raise DatasetError(
            f"{where}: {len(actions)} actions for {len(frames)} frames; expected one per frame"
        )
    return Episode(
        frames=frames,
        actions=actions,
        states=np.concatenate(states, axis=1) if states else np.zeros((len(frames), 0), dtype=np.float32),
        index=index,
        state_names=state_names,
        source=Path(where.split(":")[0]),
    )


def _demo_number(name: str) -> tuple[int, str]:
    match = re.search(r"(\d+)$", name)
    return (int(match.group(1)) if match else -1, name)
