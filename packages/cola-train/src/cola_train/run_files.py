"""The small files of a run directory: its config.json and data.json, temporaries, and storage failures."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger("cola_train")

TEMP_PREFIX = ".tmp-"


class RunStorageError(RuntimeError):
    """Writing to the run directory failed mid-run (disk full, folder made read-only, ...)."""


def read_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; ValueError naming the file (``what`` it is) when it is not one."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path} ({what}) cannot be read as JSON ({error}); restore it, or delete the run directory "
            "to start over"
        ) from error
    if not isinstance(values, dict):
        raise ValueError(f"{path} ({what}) must hold a JSON object, got {type(values).__name__}")
    return values


def write_json_atomic(path: Path, values: dict[str, Any]) -> None:
    handle, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(values, file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def clean_temporaries(run_dir: Path) -> list[Path]:
    """Remove the ``.tmp-*`` files a killed run left in ``run_dir`` and its checkpoints/ (the caller holds
    the run lock, so no live writer owns them)."""
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_dir():
            for path in folder.iterdir():
                if path.name.startswith(TEMP_PREFIX) and path.is_file():
                    size = path.stat().st_size
                    path.unlink()
                    removed.append(path)
                    logger.warning("removed %s (%d bytes), left by an interrupted write", path, size)
    return removed


def storage_error_message(run_dir: Path, error: OSError, kept: Path | None) -> str:
    where = f" ({error.filename})" if error.filename else ""
    keep = (
        f"kept: checkpoint {kept} and the metrics up to it"
        if kept
        else "no checkpoint was written yet, so a resume starts the run over"
    )
    return (
        f"writing to run directory {run_dir} failed: {error.strerror or error}{where}. The run stopped; "
        f"{keep}. Free disk space or make {run_dir} writable, then continue with `cola-train run --config "
        f"{run_dir / 'config.json'} --out {run_dir} --resume`"
    )
