"""The engine's stages under bf16 autocast, as the `gpu` size trains on CUDA (``train.bf16``), run here under
the CPU's bf16 autocast: the quickstart recipe's LAM (keypoint IDM, FSQ with the uniform bound, variance
floor) and its loss train without a dtype error or a non-finite loss, and keep fp32 weights."""

import copy
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from cola_train import build_models, loop, run_stages
from cola_train.config import RunConfig
from engine_helpers import TINY, MovingSquares

RECIPE_LAM = {
    "idm_backbone": "keypoints",
    "keypoint_features": "displacement",
    "quantizer": "fsq",
    "fsq_levels": [4, 4],
    "num_codes": 16,
    "fsq_bound": "uniform",
    "variance_floor": 0.1,
}
RECIPE_TRAIN = {"motion_weight": 10.0, "time_sampling": "uniform", "time_shift": 3.0, "bf16": True}


def _recipe_config(stages: list[str]) -> RunConfig:
    values = copy.deepcopy(TINY)
    values["stages"] = stages
    values["model"]["lam"].update(RECIPE_LAM)
    values["train"].update(RECIPE_TRAIN)
    return RunConfig.from_dict(values)


@pytest.mark.parametrize("stages", [["pretrain", "warmup", "joint"], ["lam_recon", "wm_finetune"]])
def test_every_stage_trains_under_bf16_autocast(monkeypatch, stages):
    autocasts = []

    def cpu_bf16(device: torch.device, bf16: bool):
        assert bf16
        autocasts.append(device.type)
        return torch.autocast("cpu", dtype=torch.bfloat16)

    monkeypatch.setattr(loop, "mixed_precision", cpu_bf16)
    config = _recipe_config(stages)
    models = build_models(config, with_decoder=True)
    before = {name: p.detach().clone() for name, p in models.wm.named_parameters()}
    run_stages(config, models, MovingSquares(), stages)  # raises on a non-finite loss or gradient norm
    assert len(autocasts) == len(stages)
    for module in (models.lam, models.wm, models.decoder):
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in module.parameters())
    assert any(not torch.equal(p, before[name]) for name, p in models.wm.named_parameters())
