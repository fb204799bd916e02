"""Tiny configs and synthetic clips shared by the engine tests (smaller than the `tiny` presets)."""

from __future__ import annotations

import copy
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import torch
from cola_train.config import RunConfig

TINY: dict[str, Any] = {
    "seed": 0,
    "data": {"clip_length": 4, "frame_size": 32},
    "model": {
        "lam": {"width": 32, "depth": 1, "heads": 2, "patch_size": 8, "num_codes": 8, "code_dim": 8},
        "wm": {
            "width": 32,
            "depth": 1,
            "heads": 2,
            "action_heads": 2,
            "action_depth": 1,
            "time_embed_dim": 32,
        },
    },
    "train": {"batch_size": 4, "log_every": 1, "checkpoint_every": 2, "progress": False},
    "optim": {
        "warmup_steps": 1,
        "lr_lam": 1e-3,
        "lr_action": 1e-3,
        "lr_dit": 1e-3,
        "lr_decoder": 1e-3,
        "ema_decay": 0.9,
    },
    "pretrain": {"steps": 2},
    "warmup": {"steps": 2},
    "joint": {"steps": 2},
    "lam_recon": {"steps": 2},
    "wm_finetune": {"steps": 2},
}


def tiny_config(**sections: Any) -> RunConfig:
    values = copy.deepcopy(TINY)
    for key, value in sections.items():
        if isinstance(value, dict):
            values.setdefault(key, {}).update(value)
        else:
            values[key] = value
    return RunConfig.from_dict(values)


class MovingSquares:
    """Clips of a bright square moving by a per-clip velocity: real motion for the LAM, no files needed."""

    def __init__(self, count: int = 12, frames: int = 4, size: int = 32, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.clips = []
        for _ in range(count):
            x, y = torch.randint(0, size - 8, (2,), generator=generator).tolist()
            dx, dy = torch.randint(-3, 4, (2,), generator=generator).tolist()
            video = -torch.ones(frames, 3, size, size)
            for t in range(frames):
                top, left = (y + dy * t) % (size - 8), (x + dx * t) % (size - 8)
                video[t, :, top : top + 8, left : left + 8] = 1.0
            self.clips.append(video)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"video": self.clips[index]}


DDP_SECTIONS = {
    "stages": ["pretrain", "joint"],
    "pretrain": {"steps": 2},
    "joint": {"steps": 2},
    "train": {"batch_size": 4, "micro_batch_size": 2},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _join(rank: int, world_size: int, port: int) -> None:
    """The environment torchrun gives one rank."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)


def ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """One torchrun-like rank (for torch.multiprocessing.spawn; it must live in an importable module)."""
    _join(rank, world_size, port)
    from cola_train import train
    from cola_train.distributed import init_distributed, shutdown

    context = init_distributed("cpu")
    try:
        train(tiny_config(**DDP_SECTIONS), out, data=MovingSquares())
    finally:
        shutdown(context)


def ddp_restart_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """A joint stage whose VQ restarts dead codes every step from each rank's own batch; each rank saves
    its codebook to OUT/rank<r>.safetensors."""
    _join(rank, world_size, port)
    from cola_train import build_models, joint
    from cola_train.distributed import barrier, init_distributed, shutdown
    from safetensors.torch import save_file

    context = init_distributed("cpu")
    try:
        lam = {**TINY["model"]["lam"], "dead_code_steps": 1}
        config = tiny_config(stages=["joint"], joint={"steps": 3}, model={**TINY["model"], "lam": lam})
        models = build_models(config)
        joint(config, models, MovingSquares())
        codebook = models.lam.quantizer.codebook.detach().clone()
        save_file({"codebook": codebook}, str(Path(out) / f"rank{rank}.safetensors"))
        # Both ranks done before either tears gloo down: one CI run aborted a rank ("terminate called without
        # an active exception") when the other destroyed the process group first.
        barrier(context)
    finally:
        shutdown(context)


# Every stage kind (a frozen backbone in the warm-up), and a checkpoint inside the joint stage to resume from.
# FSDP refuses VQ codebook writes in the forward (see codebook_placement.check_fsdp_codebook), hence no
# dead-code restarts.
FSDP_SECTIONS = {
    "stages": ["pretrain", "warmup", "joint"],
    "model": {**TINY["model"], "lam": {**TINY["model"]["lam"], "dead_code_steps": 0}},
    "pretrain": {"steps": 2},
    "warmup": {"steps": 2},
    "joint": {"steps": 4},
    "train": {"batch_size": 4, "micro_batch_size": 2},
}


def fsdp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """Under FSDP: an uninterrupted run, and one that loses its last checkpoint and resumes mid-joint."""
    _join(rank, world_size, port)
    from cola_train import train
    from cola_train.checkpoint import latest_checkpoint
    from cola_train.distributed import barrier, init_distributed, shutdown

    context = init_distributed("cpu")
    config = tiny_config(**{**FSDP_SECTIONS, "train": {**FSDP_SECTIONS["train"], "strategy": "fsdp"}})
    try:
        train(config, Path(out) / "straight", data=MovingSquares())
        resumed = train(config, Path(out) / "resumed", data=MovingSquares())
        if context.is_main:
            latest_checkpoint(resumed / "checkpoints").unlink()
            shutil.rmtree(resumed / "models")
        barrier(context)
        train(config, resumed, resume=True, data=MovingSquares())
    finally:
        shutdown(context)
