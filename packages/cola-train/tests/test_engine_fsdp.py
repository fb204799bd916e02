"""FSDP2 (fully_shard) on two gloo CPU processes trains like one process; its checkpoints resume exactly."""

import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from cola_train import train
from cola_train.checkpoint import latest_checkpoint, load_checkpoint
from cola_train.codebook_placement import check_fsdp_codebook
from cola_train.distributed import DistContext
from cola_train.metrics_log import read_metrics
from cola_train.pipeline import build_models
from cola_train.stages import plan_stage
from engine_helpers import FSDP_SECTIONS, MovingSquares, free_port, fsdp_worker, tiny_config


def _losses(run_dir: Path) -> list[tuple[str, int, float]]:
    return [(r["stage"], r["step"], r["loss"]) for r in read_metrics(run_dir)]


def _models(run_dir: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "models" / name / "model.safetensors")


@pytest.mark.slow  # 45 s on 2 cores: three FSDP runs on two processes plus the single-process reference
def test_fsdp_two_processes_match_one_and_resume(tmp_path: Path) -> None:
    single = train(tiny_config(**FSDP_SECTIONS), tmp_path / "single", data=MovingSquares())
    mp.spawn(fsdp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"

    one, two = _losses(single), _losses(straight)
    assert [k[:2] for k in one] == [k[:2] for k in two] and len(one) == 8
    for (_, _, a), (_, _, b) in zip(one, two, strict=True):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(a))
    for name in ("lam", "wm"):
        a, b = _models(single, name), _models(straight, name)
        # The VQ's ring buffer of recent inputs holds each process's own shards.
        for key in (k for k in a if "quantizer." not in k or k.endswith("codebook")):
            torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5, msg=f"{name}.{key}")

    # Full (gathered) tensors in the checkpoint, and the resumed run repeats the uninterrupted one exactly.
    checkpoint = load_checkpoint(latest_checkpoint(straight / "checkpoints"))
    assert checkpoint.group("wm").keys() == _models(single, "wm").keys()
    assert _losses(resumed) == two
    for name in ("lam", "wm"):
        a, b = _models(straight, name), _models(resumed, name)
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs after an FSDP resume"


def test_fsdp_refuses_codebook_writes_in_the_forward() -> None:
    models = build_models(tiny_config())  # dead-code restarts on (the LAM preset's default)
    context = DistContext(0, 2, 0, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"dead_code_steps=100.*Use train.strategy='ddp'"):
        check_fsdp_codebook(models, plan_stage("warmup", tiny_config().warmup), context)
    check_fsdp_codebook(models, plan_stage("pretrain", tiny_config().pretrain), context)  # LAM frozen
