"""Config files, overrides and the errors for keys that do not exist."""

import itertools
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from cola_train.config import (
    RunConfig,
    config_differences,
    load_config,
    parse_override,
    read_config_file,
)
from cola_train.optim import lr_factor

CONFIGS = Path(__file__).parents[3] / "configs"


@pytest.mark.parametrize("name", ["quickstart", "paper"])
def test_config_files_equal_presets(name: str) -> None:
    assert load_config(CONFIGS / f"{name}.toml") == RunConfig.preset(name)


@pytest.mark.parametrize("name", ["two-stage.yaml", "ablation-no-warmup.toml", "ablation-stop-gradient.toml"])
def test_other_config_files_load(name: str) -> None:
    config = load_config(CONFIGS / name, preset="quickstart")
    assert config.data.clip_length == 6


def test_paper_preset_has_the_paper_schedule() -> None:
    paper = RunConfig.preset("paper")
    assert (paper.warmup.steps, paper.joint.steps, paper.train.batch_size) == (8000, 52000, 128)
    assert paper.optim.lr_dit == paper.optim.lr_lam == 7.5e-5 and paper.optim.warmup_steps == 2000
    assert (paper.model.lam_preset, paper.model.wm_preset, paper.train.strategy) == ("base", "base", "fsdp")


def test_overrides_apply_and_parse_values() -> None:
    config = load_config(
        overrides=["optim.lr_dit=1e-4", "warmup.adaptive=true", "stages=['joint']", "data.path=some/where"]
    )
    assert config.optim.lr_dit == 1e-4 and config.warmup.adaptive and config.stages == ["joint"]
    assert config.data.path == "some/where"
    assert parse_override("model.lam.width=32") == ("model.lam.width", 32)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr_dt=1", "unknown config key 'optim.lr_dt'.*did you mean 'lr_dit'"),
        ("optimm.lr_dit=1", "did you mean 'optim'"),
        ("joint.stop_gradiant=true", "did you mean 'stop_gradient'"),
        ("train.batch_size='big'", "train.batch_size' expects int"),
        ("stages=['pretrain', 'warmpu']", "unknown stage 'warmpu'.*did you mean 'warmup'"),
        ("train.micro_batch_size=3", "must divide train.batch_size"),
        ("lr=3", "must look like key.sub=value|unknown config key 'lr'"),
    ],
)
def test_bad_overrides_name_the_problem(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(overrides=[override])


def test_unknown_keys_in_files_and_model_sections(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nlearning_rate = 1.0\n")
    with pytest.raises(ValueError, match=r"unknown config key 'optim\.learning_rate'"):
        load_config(bad)
    yaml_file = tmp_path / "bad.yaml"
    yaml_file.write_text("train:\n  batchsize: 4\n")
    with pytest.raises(ValueError, match="did you mean 'batch_size'"):
        load_config(yaml_file)
    with pytest.raises(ValueError, match="does not exist"):
        read_config_file(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[optim\n")
    with pytest.raises(ValueError, match="is not valid"):
        read_config_file(broken)

    from cola_train import build_models

    with pytest.raises(ValueError, match=r"unknown config key model\.lam\.'widht'.*did you mean 'width'"):
        build_models(load_config(overrides=["model.lam.widht=32"]))


def test_config_differences_lists_changed_keys() -> None:
    a = RunConfig().to_dict()
    b = load_config(overrides=["optim.lr_dit=1e-4", "model.wm.depth=2"]).to_dict()
    assert config_differences(a, b) == ["model.wm.depth: '<unset>' -> 2", "optim.lr_dit: 7.5e-05 -> 0.0001"]


@given(st.integers(1, 500), st.integers(0, 300), st.floats(0.0, 1.0))
def test_lr_schedule_warms_up_then_decays(total: int, warmup: int, floor: float) -> None:
    factors = [lr_factor(step, total, warmup, floor) for step in range(total)]
    assert all(0.0 < f <= 1.0 + 1e-9 for f in factors)
    peak = factors.index(max(factors))
    assert all(f >= floor - 1e-9 for f in factors[peak:])
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(factors[: peak + 1]))
    assert all(a + 1e-12 >= b for a, b in itertools.pairwise(factors[peak:]))
