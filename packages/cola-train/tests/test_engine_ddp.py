"""Two gloo processes that split the global batch train exactly like one process that accumulates it."""

import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from cola_train import train
from cola_train.metrics_log import read_metrics
from engine_helpers import (
    DDP_SECTIONS,
    MovingSquares,
    ddp_restart_worker,
    ddp_worker,
    free_port,
    tiny_config,
)


def test_two_processes_match_one(tmp_path: Path) -> None:
    single = train(tiny_config(**DDP_SECTIONS), tmp_path / "single", data=MovingSquares())
    mp.spawn(ddp_worker, args=(2, free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    ddp = tmp_path / "ddp"

    one = [(r["stage"], r["step"], r["loss"]) for r in read_metrics(single)]
    two = [(r["stage"], r["step"], r["loss"]) for r in read_metrics(ddp)]
    assert [k[:2] for k in one] == [k[:2] for k in two]
    for (_, _, a), (_, _, b) in zip(one, two, strict=True):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(a))
    for name in ("lam", "wm"):
        a = load_file(single / "models" / name / "model.safetensors")
        b = load_file(ddp / "models" / name / "model.safetensors")
        # The VQ's dead-code bookkeeping counts forward calls (two shards per process vs one), not training.
        for key in (k for k in a if "quantizer." not in k or k.endswith("codebook")):
            torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5, msg=f"{name}.{key}")


def test_ranks_split_the_shards_one_process_accumulates() -> None:
    # The cheap half of the DDP equality: the shard layout and seeds a rank uses are those one process uses.
    from cola_train.batches import shard_layout
    from cola_train.distributed import DistContext

    config = tiny_config(**DDP_SECTIONS)
    cpu = torch.device("cpu")
    assert shard_layout(config, DistContext(0, 1, 0, cpu)) == (2, 2)
    assert shard_layout(config, DistContext(1, 2, 1, cpu)) == (2, 1)
    with pytest.raises(ValueError, match="shared evenly by 3 processes"):
        shard_layout(config, DistContext(0, 3, 0, cpu))


def test_ranks_keep_one_codebook_through_dead_code_restarts(tmp_path: Path) -> None:
    """Restarts re-seed codes from each rank's own batch, which DDP does not average; the engine keeps
    rank 0's codebook on every rank (without that, this test's ranks end with different codebooks)."""
    mp.spawn(ddp_restart_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    first = load_file(tmp_path / "rank0.safetensors")["codebook"]
    second = load_file(tmp_path / "rank1.safetensors")["codebook"]
    assert torch.equal(first, second)
