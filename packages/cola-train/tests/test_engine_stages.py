"""Each stage trains exactly its parameter groups; frozen parts keep their bytes (buffers included)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from cola_lam import VectorQuantizer
from cola_train import build_models, plan_stage, run_stages
from cola_train.augment import random_resized_crop
from cola_train.config import StageConfig
from cola_train.model import Batch
from engine_helpers import TINY, MovingSquares, tiny_config


def _snapshot(module: torch.nn.Module) -> dict[str, bytes]:
    return {k: v.detach().cpu().numpy().tobytes() for k, v in module.state_dict().items()}


def _groups(models) -> dict[str, dict[str, bytes]]:
    wm_state = _snapshot(models.wm)
    action_ids = {id(p) for p in models.wm.action_parameters()}
    action_names = {n for n, p in models.wm.named_parameters() if id(p) in action_ids}
    backbone_names = {n for n, _ in models.wm.named_parameters()} - action_names
    return {
        "lam": _snapshot(models.lam),
        "action": {k: v for k, v in wm_state.items() if k in action_names},
        "dit": {k: v for k, v in wm_state.items() if k in backbone_names},
        "decoder": _snapshot(models.decoder) if models.decoder is not None else {},
    }


def _as_if_pretrained(models) -> None:
    # AdaLN-Zero starts every gate and the output layer at zero, so no gradient reaches the action blocks or
    # the
    # LAM until the DiT has trained; a small nudge stands in for the pretrain stage.
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in models.wm.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))


EXPECTED = {
    "pretrain": {"dit"},
    "warmup": {"lam", "action"},
    "joint": {"lam", "action", "dit"},
    "lam_recon": {"lam", "decoder"},
    "wm_finetune": {"action", "dit"},
}


@pytest.mark.parametrize("stage", list(EXPECTED))
def test_stage_moves_only_its_parameters(stage: str) -> None:
    config = tiny_config(stages=[stage])
    models = build_models(config, with_decoder=True)
    _as_if_pretrained(models)
    before = _groups(models)
    run_stages(config, models, MovingSquares(), [stage])
    after = _groups(models)
    for group in ("lam", "action", "dit", "decoder"):
        changed = {k for k in before[group] if before[group][k] != after[group][k]}
        if group in EXPECTED[stage]:
            assert changed, f"{stage} should train {group}"
        else:
            assert not changed, f"{stage} must not touch {group}: changed {sorted(changed)[:3]}"


@pytest.mark.parametrize(("switch", "frozen"), [("freeze_lam", "lam"), ("freeze_wm", "dit")])
def test_joint_ablations_freeze_bytes(switch: str, frozen: str) -> None:
    config = tiny_config(stages=["joint"], joint={"steps": 2, switch: True})
    models = build_models(config)
    _as_if_pretrained(models)
    before = _groups(models)
    run_stages(config, models, MovingSquares(), ["joint"])
    after = _groups(models)
    assert before[frozen] == after[frozen]
    assert before["action"] != after["action"]


def test_stop_gradient_leaves_lam_with_vq_loss_only() -> None:
    train = {**TINY["train"], "num_context": 1, "time_sampling": "uniform", "crop_scale_min": 1.0}
    config = tiny_config(joint={"steps": 1, "stop_gradient": True}, train=train)
    plan = plan_stage("joint", config.joint)
    models = build_models(config)
    _as_if_pretrained(models)
    models.prepare(plan)
    video = torch.stack([MovingSquares()[i]["video"] for i in range(4)])
    out = models(Batch(video), plan, torch.Generator().manual_seed(0))
    out.loss.backward()
    with_flow = {n: p.grad.clone() for n, p in models.lam.named_parameters() if p.grad is not None}
    models.zero_grad()
    models.lam(video).loss.backward()
    vq_only = {n: p.grad.clone() for n, p in models.lam.named_parameters() if p.grad is not None}
    assert with_flow.keys() == vq_only.keys()
    for name in vq_only:
        torch.testing.assert_close(with_flow[name], vq_only[name])


def test_plan_rejects_stage_with_nothing_to_train() -> None:
    assert plan_stage("joint", StageConfig(freeze_lam=True, freeze_wm=True)).trains == ("action",)
    with pytest.raises(ValueError, match="nothing left to train"):
        plan_stage("pretrain", StageConfig(steps=1, freeze_wm=True))


def test_random_crop_is_one_crop_per_clip() -> None:
    video = torch.rand(3, 4, 3, 16, 16)
    assert torch.equal(random_resized_crop(video, torch.Generator().manual_seed(0), 1.0), video)
    same = video[:, :1].expand(-1, 4, -1, -1, -1).contiguous()
    cropped = random_resized_crop(same, torch.Generator().manual_seed(0), 0.5)
    assert cropped.shape == same.shape
    # Identical frames stay identical after the crop: every frame of a clip gets the same window.
    assert torch.equal(cropped[:, 0], cropped[:, 3])
    again = random_resized_crop(same, torch.Generator().manual_seed(0), 0.5)
    assert torch.equal(cropped, again)


def _clips(data: MovingSquares) -> torch.Tensor:
    return torch.stack([data[i]["video"] for i in range(len(data))])


@pytest.mark.parametrize("stage", ["warmup", "joint", "lam_recon"])
def test_first_lam_stage_places_the_codebook_on_training_clips(stage: str) -> None:
    # A fresh IDM's outputs sit in one small cluster; N(0, 1) codes would hand them all one code at step 0.
    # A tiny learning rate isolates the placement from what one Adam step at 1e-3 does to a fresh IDM.
    rates = {"lr_lam": 1e-7, "lr_action": 1e-7, "lr_dit": 1e-7, "lr_decoder": 1e-7}
    config = tiny_config(stages=[stage], optim=rates, **{stage: {"steps": 1}})
    models = build_models(config, with_decoder=True)
    _as_if_pretrained(models)
    assert not bool(models.lam.quantizer.initialized)
    data = MovingSquares()
    with torch.no_grad():
        random_codes = models.lam.eval()(_clips(data)).indices
    run_stages(config, models, data, [stage])
    assert bool(models.lam.quantizer.initialized)
    with torch.no_grad():
        codes = models.lam.eval()(_clips(data)).indices
    assert codes.unique().numel() > random_codes.unique().numel()


def test_codebook_is_placed_once_across_stages(monkeypatch) -> None:
    calls = []
    place = VectorQuantizer.initialize_from

    def counted(self, *args, **kwargs):
        calls.append(1)
        return place(self, *args, **kwargs)

    monkeypatch.setattr(VectorQuantizer, "initialize_from", counted)
    config = tiny_config(stages=["warmup", "joint"])
    run_stages(config, build_models(config), MovingSquares(), ["warmup", "joint"])
    assert len(calls) == 1
