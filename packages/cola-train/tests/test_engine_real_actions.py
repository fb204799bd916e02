"""The ground-truth-action ceiling (model.actions = "real") and the motion-weighted loss in the engine."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from cola_train import load_trained, train
from cola_train.config import RunConfig, model_configs
from cola_train.real_actions import RealActionConfig, RealActionEncoder
from engine_helpers import TINY, MovingSquares, tiny_config


class SquaresWithActions(MovingSquares):
    """Moving squares whose real actions are the square's per-frame velocity, two rows per transition."""

    def __init__(self, count: int = 12, frames: int = 4, seed: int = 0) -> None:
        super().__init__(count=count, frames=frames, seed=seed)
        generator = torch.Generator().manual_seed(seed + 1)
        self.actions = [torch.randn(frames - 1, 2, 3, generator=generator) for _ in range(count)]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"video": self.clips[index], "transition_actions": self.actions[index]}


def _real_config(**sections) -> RunConfig:
    return tiny_config(
        stages=["pretrain", "warmup", "joint"],
        data={"clip_length": 4, "frame_size": 32, "frame_skip": 2},
        model={**TINY["model"], "actions": "real", "real_action_columns": [0, 2]},
        **sections,
    )


def test_real_action_width_sets_the_world_models_action_dim() -> None:
    _, wm_config = model_configs(_real_config())
    assert wm_config.action_dim == 2 * 2  # two columns x frame skip 2


def test_real_action_run_trains_saves_and_loads_without_a_lam(tmp_path: Path) -> None:
    data = SquaresWithActions()
    run = train(_real_config(), tmp_path / "run", data=data)
    models = run / "models"
    assert (models / "real_actions" / "config.json").is_file() and (models / "wm").is_dir()
    assert not (models / "lam").exists()
    trained = load_trained(run)
    assert trained.lam is None and trained.real_actions is not None
    columns = torch.stack([a[..., [0, 2]] for a in data.actions]).reshape(-1, 2)
    torch.testing.assert_close(trained.real_actions.mean, columns.mean(0))
    encoded = trained.real_actions(data.actions[0][None])
    assert encoded.shape == (1, 3, 4)
    # the real actions reach the world model: its action blocks moved away from zero
    assert trained.wm.action_conditioner.to_modulation[-1].weight.abs().sum() > 0


def test_real_action_run_resumes_with_its_statistics(tmp_path: Path) -> None:
    config = _real_config(joint={"steps": 4}, train={**tiny_config().train.__dict__, "checkpoint_every": 2})
    first = train(config, tmp_path / "a", data=SquaresWithActions())
    again = train(config, tmp_path / "a", resume=True, data=SquaresWithActions())
    assert first == again and load_trained(again).real_actions.initialized


def test_real_actions_need_data_with_transition_actions(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="transition_actions"):
        train(_real_config(), tmp_path / "run", data=MovingSquares())


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"model": {"actions": "ground_truth"}}, "model.actions"),
        ({"model": {"actions": "real", "real_action_columns": []}}, "non-empty"),
        ({"model": {"actions": "real"}, "stages": ["lam_recon"]}, "lam_recon"),
        ({"train": {"motion_weight": -1.0}}, "motion_weight"),
    ],
)
def test_bad_action_settings_are_clear_errors(sections: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(sections)


def test_encoder_refuses_before_fit_and_wrong_shapes() -> None:
    encoder = RealActionEncoder(RealActionConfig([0, 1], frame_skip=2))
    with pytest.raises(ValueError, match="fit"):
        encoder(torch.zeros(1, 3, 2, 4))
    encoder.fit(torch.randn(8, 3, 2, 4))
    with pytest.raises(ValueError, match="frame_skip=2"):
        encoder(torch.zeros(1, 3, 1, 4))
    with pytest.raises(ValueError, match="action columns"):
        RealActionEncoder(RealActionConfig([5], frame_skip=2)).fit(torch.zeros(1, 3, 2, 4))


def test_motion_weight_changes_the_loss_and_keeps_runs_deterministic(tmp_path: Path) -> None:
    from cola_train.metrics_log import read_metrics

    def losses(weight: float, out: str) -> list[float]:
        config = tiny_config(
            stages=["pretrain"], train={**tiny_config().train.__dict__, "motion_weight": weight}
        )
        train(config, tmp_path / out, data=MovingSquares())
        return [r["loss"] for r in read_metrics(tmp_path / out) if "loss" in r]

    assert losses(5.0, "a") == losses(5.0, "b") != losses(0.0, "c")
