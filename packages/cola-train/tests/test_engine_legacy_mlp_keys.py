"""A training checkpoint written before the LAM and the DiT shared one MLP class (the LAM's MLP layers were
then ``fc`` / ``proj``, now ``fc1`` / ``fc2``) still resumes, optimizer state included, and seeds
init_from."""

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from cola_train import build_models, train
from cola_train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from cola_train.init_from import read_source
from cola_train.manifest import update_manifest
from cola_train.metrics_log import read_metrics
from engine_helpers import MovingSquares, tiny_config

STEPS = {"pretrain": {"steps": 4}, "warmup": {"steps": 4}, "joint": {"steps": 4}}
LAM_PARTS = ("lam.", "decoder.")  # the world model (wm, ema) always had fc1 / fc2


def _legacy(name: str) -> str:
    """A LAM / LAM decoder parameter name (or a key under one) as it was before the MLPs were shared."""
    if name.removeprefix("optim.").startswith(LAM_PARTS):
        return name.replace(".mlp.fc1.", ".mlp.fc.").replace(".mlp.fc2.", ".mlp.proj.")
    return name


def _rewrite_with_legacy_names(path: Path) -> None:
    checkpoint = load_checkpoint(path)
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in checkpoint.tensors.items():
        prefix, rest = _legacy(key).split(".", 1)
        groups.setdefault(prefix, {})[rest] = value
    state = checkpoint.state
    optim = state["optim"]
    optim["param_groups"] = [
        {**group, "params": [_legacy(name) for name in group["params"]]} for group in optim["param_groups"]
    ]
    optim["scalars"] = {_legacy(name): value for name, value in optim["scalars"].items()}
    assert any(".mlp.proj." in key for key in groups["lam"])
    assert any(".mlp.proj." in name for group in optim["param_groups"] for name in group["params"])
    save_checkpoint(path, groups, state)


def test_a_checkpoint_with_the_old_mlp_names_resumes_and_initialises(tmp_path: Path) -> None:
    straight = train(tiny_config(**STEPS), tmp_path / "straight", data=MovingSquares())
    legacy = tmp_path / "legacy"
    shutil.copytree(straight, legacy)
    shutil.rmtree(legacy / "models")
    # Resume mid-stage (the optimizer state then loads too) from the newest checkpoint not at a stage's end.
    checkpoints = list_checkpoints(legacy / "checkpoints")
    resume_from = [p for p in checkpoints if not load_checkpoint(p).state["stage_done"]][-1]
    for later in checkpoints[checkpoints.index(resume_from) + 1 :]:
        later.unlink()
    update_manifest(legacy / "checkpoints", {})
    saved_lam = load_checkpoint(resume_from).group("lam")
    _rewrite_with_legacy_names(resume_from)

    models = build_models(tiny_config(**STEPS))
    assert read_source(resume_from).load_into(models) == ["lam", "wm"]
    assert models.lam.state_dict().keys() == saved_lam.keys()
    assert all(torch.equal(value, saved_lam[key]) for key, value in models.lam.state_dict().items())

    train(tiny_config(**STEPS), legacy, resume=True, data=MovingSquares())
    losses = {(r["stage"], r["step"]): r["loss"] for r in read_metrics(legacy)}
    assert losses == {(r["stage"], r["step"]): r["loss"] for r in read_metrics(straight)}
    for name in ("lam", "wm"):
        a = load_file(legacy / "models" / name / "model.safetensors")
        b = load_file(straight / "models" / name / "model.safetensors")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[key], b[key]) for key in a), f"{name} differs after the legacy resume"
