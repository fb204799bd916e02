"""A fingerprint of a dataset on disk, stored with a run (``RUN/data.json``) and compared on resume.

It hashes every file's relative path and size and its first and last 64 KiB: cheap on large datasets, and any
re-collection, edit, truncation or swapped folder changes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SAMPLE_BYTES = 64 * 1024


def data_fingerprint(path: Path) -> str:
    """sha256 over the files of ``path`` (a dataset directory or one file), in path order."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        name = file.name if file == path else file.relative_to(path).as_posix()
        digest.update(f"{name}\0{size}\0".encode())
        with open(file, "rb") as handle:
            digest.update(handle.read(SAMPLE_BYTES))
            if size > SAMPLE_BYTES:
                handle.seek(max(size - SAMPLE_BYTES, SAMPLE_BYTES))
                digest.update(handle.read())
    return digest.hexdigest()
