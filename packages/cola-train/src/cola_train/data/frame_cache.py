"""Episode frames decoded on demand, with a memory-bounded cache.

A dataset whose decoded frames fit in the budget is decoded once at load time and kept, as before (and a bad
video is reported then). A larger one keeps only what the budget holds: each episode is decoded when a clip
first needs it and the least recently used episodes are dropped, so memory stays bounded whatever the size.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cola_train.data.episode import DatasetError

BUDGET_ENV = "COLA_DECODE_CACHE_MB"
DEFAULT_BUDGET_MB = 4096


def decode_budget_bytes() -> int:
    """The decoded-frame budget: $COLA_DECODE_CACHE_MB megabytes (default 4096)."""
    return int(float(os.environ.get(BUDGET_ENV, DEFAULT_BUDGET_MB)) * 2**20)


class DecodeCache:
    """Least-recently-used decoded frames, at most `max_bytes` of them (one entry may exceed it alone)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._bytes = 0
        self.decodes = 0

    def get(self, key: Any, decode: Callable[[], np.ndarray]) -> np.ndarray:
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        frames = decode()
        self.decodes += 1
        self._entries[key] = frames
        self._bytes += frames.nbytes
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.nbytes
        return frames

    @property
    def cached_bytes(self) -> int:
        return self._bytes


class LazyFrames:
    """uint8 [T, H, W, 3] frames of one episode that are decoded through a DecodeCache when indexed.

    It has the array attributes the loaders and ClipDataset use (shape, dtype, ndim, len, indexing, iteration,
    np.asarray), so an Episode holds it in place of an array.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(
        self, cache: DecodeCache, key: Any, decode: Callable[[], np.ndarray], shape: tuple[int, ...]
    ) -> None:
        self.cache, self.key, self._decode, self.shape = cache, key, decode, tuple(shape)

    def _checked_decode(self) -> np.ndarray:
        frames = self._decode()
        if frames.shape != self.shape:
            raise DatasetError(
                f"{self.key}: decoded frames have shape {list(frames.shape)}, the metadata says "
                f"{list(self.shape)}; re-create or re-download the dataset"
            )
        return frames

    def load(self) -> np.ndarray:
        return self.cache.get(self.key, self._checked_decode)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.load()[index]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.load())

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        frames = self.load()
        return frames if dtype is None else frames.astype(dtype)
