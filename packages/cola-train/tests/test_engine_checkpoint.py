"""Checkpoints: atomic safetensors files that restore the optimizer, the RNGs and the EMA exactly."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from cola_train.checkpoint import (
    capture_rng,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    prune_checkpoints,
    restore_rng,
    save_checkpoint,
)
from cola_train.optim import EMA, build_optimizer
from torch import nn


def _model_and_optimizer(seed: int) -> tuple[nn.Module, torch.optim.Optimizer, dict[int, str]]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    groups = {"lam": list(model[0].parameters()), "dit": list(model[2].parameters())}
    optimizer = build_optimizer(groups, {"lam": 1e-2, "dit": 3e-2}, [0.9, 0.99], 0.01)
    return model, optimizer, {id(p): n for n, p in model.named_parameters()}


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(seed))
    optimizer.zero_grad()
    model(x).square().mean().backward()
    optimizer.step()


def test_optimizer_state_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    model, optimizer, names = _model_and_optimizer(0)
    for seed in range(3):
        _step(model, optimizer, seed)
    tensors, meta = optimizer_to_tensors(optimizer, names)
    path = save_checkpoint(
        tmp_path / "c.safetensors", {"model": model.state_dict(), "optim": tensors}, {"optim": meta}
    )
    loaded = load_checkpoint(path)

    clone, clone_optimizer, clone_names = _model_and_optimizer(1)
    clone.load_state_dict(loaded.group("model"))
    optimizer_from_tensors(clone_optimizer, clone_names, loaded.group("optim"), loaded.state["optim"])
    _step(model, optimizer, 7)
    _step(clone, clone_optimizer, 7)
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)


def test_rng_states_restore() -> None:
    tensors, meta = capture_rng()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng(tensors, meta)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]


def test_atomic_write_leaves_no_temporary_files_and_prunes(tmp_path: Path) -> None:
    for counter in (3, 10, 7):
        save_checkpoint(
            checkpoint_path(tmp_path, counter), {"x": {"a": torch.full((2,), counter)}}, {"n": counter}
        )
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint-000000003.safetensors",
        "checkpoint-000000007.safetensors",
        "checkpoint-000000010.safetensors",
    ]
    prune_checkpoints(tmp_path, keep=2)
    assert latest_checkpoint(tmp_path).name == "checkpoint-000000010.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "checksums.json") == [
        "checkpoint-000000007.safetensors",
        "checkpoint-000000010.safetensors",
    ], "no .tmp files left behind"
    (tmp_path / "checkpoint-000000011.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint(latest_checkpoint(tmp_path))


def test_ema_follows_and_restores() -> None:
    model = nn.Linear(3, 3)
    ema = EMA(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # the ramp gives decay min(0.5, 2/11)
    torch.testing.assert_close(ema.state_dict()["weight"], start + 1.0 * (1 - 2 / 11))
    other = EMA(nn.Linear(3, 3), decay=0.5)
    other.load_state_dict(ema.state_dict(), ema.updates)
    target = nn.Linear(3, 3)
    other.copy_to(target)
    assert torch.equal(target.weight, ema.state_dict()["weight"]) and other.updates == 1
