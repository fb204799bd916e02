"""``checksums.json``: the sha256 of every checkpoint a run wrote, kept beside them and checked on load.

An entry is recorded after the new file is complete and before it is renamed into place, so at every moment
each checkpoint on disk matches its entry (a crash in between leaves only an entry for a file that is not
there, which is ignored and dropped on the next write).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from cola_lam.hub_io import file_sha256

logger = logging.getLogger("cola_train")

MANIFEST_NAME = "checksums.json"


def read_manifest(directory: Path) -> dict[str, str] | None:
    """The manifest of ``directory``; None when there is none."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); the checksums of the checkpoints beside it are lost: "
            "delete it to load them unverified"
        ) from error
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} must map file names to sha256 digests; delete it to load unverified")
    return manifest


def update_manifest(directory: Path, set_digests: dict[str, str]) -> None:
    """Set the given entries, drop those of files no longer present; written atomically."""
    directory = Path(directory)
    manifest = read_manifest(directory) or {}
    manifest.update(set_digests)
    manifest = {
        name: digest
        for name, digest in manifest.items()
        if name in set_digests or (directory / name).exists()
    }
    handle, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    with os.fdopen(handle, "w") as file:
        json.dump(manifest, file, indent=2, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, directory / MANIFEST_NAME)


def verify_file(path: Path) -> None:
    """ValueError naming ``path`` when its sha256 differs from its manifest entry (or it has none)."""
    path = Path(path)
    manifest = read_manifest(path.parent)
    if manifest is None:
        logger.warning("%s has no %s beside it; its bytes cannot be verified", path, MANIFEST_NAME)
        return
    if path.name not in manifest:
        raise ValueError(
            f"{path} has no checksum in {path.parent / MANIFEST_NAME}; it was not written by this run. Move "
            "it out of the folder (or delete the manifest to load everything there unverified)"
        )
    if file_sha256(path) != manifest[path.name]:
        raise ValueError(
            f"{path} is corrupt: its sha256 differs from the one recorded in {path.parent / MANIFEST_NAME} "
            "when it was written; delete it to resume from the older checkpoint beside it"
        )
