"""The data boundary of the loop: which clips a step reads, loading them, and checking them.

Each step is a pure function of (seed, stage, step): the global batch's clip indices come from a generator
seeded with those three numbers (:func:`batch_indices`), and every shard of the batch draws its noise, crops
and action dropout from its own generator seeded with (seed, stage, step, shard).

The models do not check that their inputs are finite while they train (that would be a device sync every
forward); :func:`check_finite` checks each batch here, where it can name the clips.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cola_train.config import RunConfig
from cola_train.distributed import DistContext
from cola_train.model import Batch


def derive_seed(*numbers: int) -> int:
    """A 63-bit seed that is a pure function of ``numbers``."""
    return int(np.random.SeedSequence([int(n) for n in numbers]).generate_state(2, dtype=np.uint64)[0] >> 1)


def shard_layout(config: RunConfig, context: DistContext) -> tuple[int, int]:
    """(shard size, shards per process) for the global batch."""
    batch = config.train.batch_size
    micro = config.train.micro_batch_size or batch // context.world_size
    if micro == 0 or batch % micro or (batch // micro) % context.world_size:
        raise ValueError(
            f"train.batch_size {batch} must split into shards of train.micro_batch_size "
            f"{config.train.micro_batch_size or micro} shared evenly by {context.world_size} processes"
        )
    return micro, batch // micro // context.world_size


def batch_indices(seed: int, stage_index: int, step: int, dataset_size: int, batch_size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(derive_seed(seed, stage_index, step, 0))
    return torch.randint(dataset_size, (batch_size,), generator=generator)


def load_batch(dataset: Any, indices: torch.Tensor, device: torch.device, real_actions: bool) -> Batch:
    """The clips ``[B, T, C, H, W]`` and, when the run conditions on real actions, their transition actions
    ``[B, T-1, frame_skip, A]``."""
    items = [dataset[int(i)] for i in indices]
    video = torch.stack([item["video"] for item in items]).to(device, non_blocking=True)
    if not real_actions:
        return Batch(video)
    actions = torch.stack([transition_actions(item) for item in items]).to(device, non_blocking=True)
    return Batch(video, actions)


def check_finite(batch: Batch, clips: torch.Tensor, where: str) -> None:
    """ValueError naming ``where`` (stage and step) and the dataset indices of clips with NaN or inf pixels
    (or real actions); the models would only say that some input was not finite."""
    bad = ~torch.isfinite(batch.video.flatten(1)).all(dim=1)
    if bool(bad.any()):
        indices = clips[bad.cpu()].tolist()
        raise ValueError(
            f"bad data in {where}: clip(s) {indices} of the dataset hold NaN or infinite pixel values; "
            "nothing was trained on them. Frames must be finite (in [-1, 1]): fix or drop those clips"
        )
    if batch.transition_actions is not None:
        bad = ~torch.isfinite(batch.transition_actions.flatten(1)).all(dim=1)
        if bool(bad.any()):
            indices = clips[bad.cpu()].tolist()
            raise ValueError(
                f"bad data in {where}: clip(s) {indices} of the dataset hold NaN or infinite actions; "
                "nothing was trained on them. Fix or drop those clips"
            )


def transition_actions(item: dict[str, Any]) -> torch.Tensor:
    if "transition_actions" not in item:
        raise ValueError(
            "model.actions = 'real' needs clips with real actions ('transition_actions'); this data has "
            f"only {sorted(item)}: train on a cola_train ClipDataset of a dataset with actions"
        )
    return item["transition_actions"]
