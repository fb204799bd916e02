"""One process per run directory: an exclusive ``flock`` on ``RUN/.lock`` held while the run works there.

Two processes on one ``--out`` used to both train and log every step twice. The lock is released by the
kernel when the holder exits, however it exits, so a killed run never leaves the folder blocked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_NAME = ".lock"


class RunLock:
    """``with RunLock(run_dir):`` creates ``run_dir`` and holds its lock; ValueError if another process
    holds it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise ValueError(
                f"cannot use {self.run_dir} as a run directory ({error.strerror}: {error.filename}); choose "
                "an --out whose parent folders are directories you can write to"
            ) from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ValueError(
                f"run directory {self.run_dir} is in use by another cola-train process (pid {holder}, lock "
                f"{self.run_dir / LOCK_NAME}); wait for it to finish or stop it, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
