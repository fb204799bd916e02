"""Strict, checksummed ``save_pretrained`` / ``from_pretrained`` for the Hub mixin's safetensors folders.

The mixin loads non-strictly, so a weights file missing a tensor used to load with that tensor left at its
initial value, and flipped bytes loaded as weights. Here every load names missing and unexpected keys, and a
``checksums.json`` written beside ``model.safetensors`` is verified before the weights are read.
(cola_wm uses it too: cola-wm depends on cola-lam.)
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from cola_lam.blocks import upgrade_legacy_mlp_keys

logger = logging.getLogger(__name__)

MANIFEST_NAME = "checksums.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path, names: list[str]) -> None:
    """Record the sha256 of ``directory/name`` for each name in ``directory/checksums.json``."""
    directory = Path(directory)
    manifest = {name: file_sha256(directory / name) for name in names}
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")


def verify_manifest(path: Path) -> None:
    """ValueError naming ``path`` when its bytes differ from the checksum recorded beside it."""
    path = Path(path)
    manifest_path = path.parent / MANIFEST_NAME
    if not manifest_path.is_file():
        logger.warning("%s has no %s beside it; its bytes cannot be verified", path, MANIFEST_NAME)
        return
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = manifest[path.name]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{manifest_path} is unreadable or has no checksum for {path.name} ({error}); save the model "
            "again with save_pretrained, or delete the manifest to load it unverified"
        ) from error
    if file_sha256(path) != expected:
        raise ValueError(
            f"{path} is corrupt: its sha256 differs from the one in {manifest_path}; the file was damaged "
            "after it was written. Restore it from a backup or save the model again"
        )


def load_state_strict(module: nn.Module, state: dict[str, Any], where: str) -> None:
    """``module.load_state_dict(state)`` with a ValueError naming the missing, unexpected or misshapen
    keys and ``where`` the weights came from. MLP keys saved before the MLPs were shared load too."""
    state = upgrade_legacy_mlp_keys(module, state)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{key} {tuple(state[key].shape)} (model {tuple(value.shape)})"
        for key, value in own.items()
        if key in state and tuple(state[key].shape) != tuple(value.shape)
    ]
    if missing or unexpected or wrong:
        found = (("missing keys", missing), ("unexpected keys", unexpected), ("shapes", wrong))
        parts = [f"{label} {items[:8]}{' ...' if len(items) > 8 else ''}" for label, items in found if items]
        raise ValueError(
            f"the weights in {where} do not match this {type(module).__name__}: {'; '.join(parts)}. They "
            "were written for another model config, or the file was edited; load them with the config they "
            "were saved with"
        )
    module.load_state_dict(state)


class StrictHubMixin:
    """Mixed in before ``PyTorchModelHubMixin``: saves a checksum manifest, loads strictly and verified."""

    def _save_pretrained(self, save_directory: Path) -> None:
        super()._save_pretrained(save_directory)  # type: ignore[misc]
        write_manifest(Path(save_directory), ["model.safetensors"])

    @classmethod
    def _load_as_safetensor(cls, model: Any, model_file: str, map_location: str, strict: bool) -> Any:
        # Always strict, whatever ``strict`` the caller passed: a partial load is never silently right.
        verify_manifest(Path(model_file))
        try:
            state = load_file(model_file, device=map_location)
        except (SafetensorError, OSError) as error:
            raise ValueError(
                f"{model_file} is not a readable safetensors file ({error}); save the model again"
            ) from error
        load_state_strict(model, state, model_file)
        model.eval()
        return model
