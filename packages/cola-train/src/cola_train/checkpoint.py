"""Atomic training checkpoints in one safetensors file: model and optimizer tensors plus JSON metadata.

A checkpoint holds named tensor groups (``lam.*``, ``wm.*``, ``ema.*``, ``optim.*``, ``rng.*``) and a JSON
``state`` (stage, step, RNG state of python and numpy, optimizer hyper-parameters, anything the loop needs).
It is written to a temporary file in the same directory, fsynced and renamed over the target, so a crash at
any moment leaves either the previous checkpoint or the new one, never half a file. Its sha256 goes into the
directory's ``checksums.json`` (:mod:`cola_train.manifest`) and is checked on every load.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cola_lam.hub_io import file_sha256
from safetensors import safe_open
from safetensors.torch import save_file

from cola_train.distributed import full_tensor
from cola_train.manifest import update_manifest, verify_file

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d{9})\.safetensors$")


@dataclass
class Checkpoint:
    tensors: dict[str, torch.Tensor]
    state: dict[str, Any]
    path: Path

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors saved under ``prefix.``, with the prefix removed."""
        start = prefix + "."
        return {key[len(start) :]: value for key, value in self.tensors.items() if key.startswith(start)}


def checkpoint_path(directory: Path, counter: int) -> Path:
    return Path(directory) / f"checkpoint-{counter:09d}.safetensors"


def save_checkpoint(path: Path, groups: dict[str, dict[str, torch.Tensor]], state: dict[str, Any]) -> Path:
    """Write ``groups`` (prefix -> tensors) and ``state`` (JSON-able) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for prefix, group in groups.items():
        for key, value in group.items():
            # safetensors refuses shared storage and non-contiguous views; a private contiguous copy is safe.
            tensors[f"{prefix}.{key}"] = value.detach().to("cpu").contiguous().clone()
    handle, temp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(handle)
    try:
        save_file(tensors, temp_name, metadata={"state": json.dumps(state)})
        with open(temp_name, "rb+") as file:
            os.fsync(file.fileno())
        digest = file_sha256(Path(temp_name))
        # An older file of this name goes first: were it still there once the manifest holds the new digest,
        # a crash would leave it failing its check (the run then resumes from the checkpoint before it).
        path.unlink(missing_ok=True)
        update_manifest(path.parent, {path.name: digest})
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    directory_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
    except Exception as error:
        raise ValueError(
            f"checkpoint {path} cannot be read ({error}); delete it to resume from an older one"
        ) from error
    verify_file(path)
    if "state" not in metadata:
        raise ValueError(
            f"checkpoint {path} has no training state in its metadata; it was not written by cola-train"
        )
    return Checkpoint(tensors=tensors, state=json.loads(metadata["state"]), path=path)


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if CHECKPOINT_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: int(CHECKPOINT_PATTERN.match(p.name).group(1)))


def latest_checkpoint(directory: Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def prune_checkpoints(directory: Path, keep: int) -> None:
    old = list_checkpoints(directory)[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    if old:
        update_manifest(directory, {})


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer, names: dict[int, str]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten an optimizer's state to ``{param_name.key: tensor}`` plus JSON (hyper-parameters, scalar
    state).

    ``names`` maps ``id(parameter)`` to a stable parameter name, so the state reloads into a freshly built
    optimizer whose parameter objects differ.
    """
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    groups: list[dict[str, Any]] = []
    for group in optimizer.param_groups:
        hyper = {k: v for k, v in group.items() if k != "params"}
        groups.append({"hyper": _jsonable(hyper), "params": [names[id(p)] for p in group["params"]]})
        for parameter in group["params"]:
            name = names[id(parameter)]
            for key, value in optimizer.state.get(parameter, {}).items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{name}.{key}"] = full_tensor(value)
                else:
                    scalars.setdefault(name, {})[key] = value
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer,
    names: dict[int, str],
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> None:
    """Load state written by :func:`optimizer_to_tensors` into ``optimizer`` (same groups, same parameter
    names).
    """
    saved_groups = meta["param_groups"]
    if len(saved_groups) != len(optimizer.param_groups):
        raise ValueError(
            f"checkpoint optimizer has {len(saved_groups)} parameter groups, this run builds "
            f"{len(optimizer.param_groups)}; the checkpoint belongs to a different stage or model"
        )
    for saved, group in zip(saved_groups, optimizer.param_groups, strict=True):
        current = [names[id(p)] for p in group["params"]]
        if saved["params"] != current:
            missing = sorted(set(saved["params"]) ^ set(current))[:5]
            raise ValueError(
                f"checkpoint optimizer parameters differ from this model's (e.g. {missing}); "
                "the checkpoint belongs to a different model configuration"
            )
        for key, value in saved["hyper"].items():
            group[key] = tuple(value) if isinstance(group.get(key), tuple) else value
        for parameter in group["params"]:
            name = names[id(parameter)]
            state: dict[str, Any] = dict(meta["scalars"].get(name, {}))
            prefix = name + "."
            for key, value in tensors.items():
                if key.startswith(prefix) and "." not in key[len(prefix) :]:
                    state[key[len(prefix) :]] = _like(value, parameter)
            if state:
                optimizer.state[parameter] = state


def _like(value: torch.Tensor, parameter: torch.Tensor) -> torch.Tensor:
    """A saved full optimizer tensor placed like ``parameter`` (sharded the same way under FSDP)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(parameter, DTensor) and value.shape == parameter.shape:
        return distribute_tensor(value.to(parameter.device), parameter.device_mesh, parameter.placements)
    return value.to(parameter.device)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor):
            value = value.item()
        if isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Torch, numpy and python RNG states as tensors + JSON."""
    numpy_state = np.random.get_state()
    tensors = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.asarray(numpy_state[1], dtype=np.int64)),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state()
    python_state = random.getstate()
    meta = {
        "numpy": [numpy_state[0], int(numpy_state[2]), int(numpy_state[3]), float(numpy_state[4])],
        "python": [python_state[0], list(python_state[1]), python_state[2]],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    kind, position, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
