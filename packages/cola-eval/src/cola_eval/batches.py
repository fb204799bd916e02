"""Iterating an evaluation set of clips in batches, with the checks every evaluator needs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch


def clip_batches(
    dataset: Sequence[dict[str, Any]], batch_size: int, max_clips: int | None = None, what: str = "evaluation"
) -> Iterator[dict[str, torch.Tensor]]:
    """Stack consecutive items of a ClipDataset-like sequence (dicts of tensors / ints) into batches.

    Raises ValueError on an empty set: an evaluation over zero clips must not report numbers.
    """
    total = len(dataset) if max_clips is None else min(len(dataset), max_clips)
    if total == 0:
        raise ValueError(
            f"the {what} set is empty (0 clips): check the data path, the split and that episodes "
            "are at least clip_length frames long"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, total, batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, total))]
        yield {key: torch.stack([torch.as_tensor(item[key]) for item in items]) for key in items[0]}
