"""Config files, overrides and the errors for keys that do not exist."""

import itertools
import json
import sys
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from cola_lam import LAMConfig
from cola_train.config import (
    PRESETS,
    RunConfig,
    config_differences,
    load_config,
    parse_override,
    read_config_file,
)
from cola_train.optim import lr_factor
from cola_wm import DiTConfig

CONFIGS = Path(__file__).parents[3] / "configs"
RESULTS = Path(__file__).parents[3] / "benchmarks" / "results"


@pytest.mark.parametrize("name", PRESETS)
def test_presets_are_the_shipped_config_files(name: str) -> None:
    shipped = Path(str(resources.files("cola_train").joinpath("configs", f"{name}.toml")))
    assert (CONFIGS / f"{name}.toml").resolve() == shipped.resolve()  # configs/ links to the package's
    assert load_config(shipped) == RunConfig.preset(name) == load_config(preset=name)
    with pytest.raises(ValueError, match=r"unknown run preset 'quickstrat'.*did you mean 'quickstart'"):
        RunConfig.preset("quickstrat")


def test_model_sections_override_the_presets_fields(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text('[model]\nwm_preset = "tiny"\n[model.lam]\nwidth = 64\n[model.wm]\ndepth = 2\n')
    config = load_config(path, ["data.frame_size=32", "model.lam.heads=2"], preset="paper")
    lam, wm = config.model.lam, config.model.wm
    assert isinstance(lam, LAMConfig) and isinstance(wm, DiTConfig)
    base = LAMConfig.preset("base")
    assert (lam.width, lam.heads, lam.depth, lam.dead_code_steps) == (64, 2, base.depth, 0)  # paper's 0 kept
    assert lam.frame_size == wm.frame_size == 32 and wm.num_frames == 16  # follow the data
    assert (wm.depth, wm.width, wm.action_dim) == (2, DiTConfig().width, lam.action_dim)
    assert RunConfig.from_dict(config.to_dict()) == config  # config.json round-trips
    with pytest.raises(ValueError, match=r"config key 'model\.lam\.width' expects int"):
        load_config(overrides=["model.lam.width='wide'"])
    with pytest.raises(ValueError, match=r"model\.wm\.frame_size \(64\) must equal data\.frame_size \(32\)"):
        RunConfig.from_dict({"data": {"frame_size": 32}, "model": {"wm": {"frame_size": 64}}})


def test_config_json_of_runs_before_typed_model_configs_loads() -> None:
    # A run's config.json from before model.lam / model.wm were typed: free dicts of preset overrides.
    saved = json.loads(
        (RESULTS / "2026-11-25-reproduce-cpu-3seeds" / "configs" / "seed0-pretrain.json").read_text()
    )
    assert saved["model"]["lam"] == {} and saved["model"]["wm"] == {}
    config = RunConfig.from_dict(saved)
    assert config.model.lam == LAMConfig.preset("tiny", frame_size=saved["data"]["frame_size"])
    assert config.data.clip_length == saved["data"]["clip_length"]
    quickstart = RunConfig.preset("quickstart").to_dict()
    quickstart["model"]["lam"] = {
        "dead_code_steps": 10,
        "variance_floor": 0.1,
        "idm_backbone": "keypoints",
        "keypoint_features": "displacement",
        "quantizer": "fsq",
        "fsq_levels": [4, 4],  # a list, as config.json stores it
        "num_codes": 16,
        "fsq_bound": "uniform",
    }
    quickstart["model"]["wm"] = {"guidance_scale": 2.0}
    assert RunConfig.from_dict(quickstart) == RunConfig.preset("quickstart")


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


def test_the_world_models_guidance_interval_is_set_from_a_config_and_round_trips() -> None:
    config = load_config(overrides=["model.wm.guidance_interval=[0.7, 1.0]"], preset="quickstart")
    assert config.model.wm.guidance_interval == (0.7, 1.0)
    loaded = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))  # as config.json stores it
    assert loaded == config and loaded.model.wm.guidance_interval == (0.7, 1.0)
    with pytest.raises(ValueError, match="guidance_interval"):
        load_config(overrides=["model.wm.guidance_interval=[1.0, 0.7]"])


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
    assert config_differences(a, b) == ["model.wm.depth: 4 -> 2", "optim.lr_dit: 7.5e-05 -> 0.0001"]


@given(st.integers(1, 500), st.integers(0, 300), st.floats(0.0, 1.0))
def test_lr_schedule_warms_up_then_decays(total: int, warmup: int, floor: float) -> None:
    factors = [lr_factor(step, total, warmup, floor) for step in range(total)]
    assert all(0.0 < f <= 1.0 + 1e-9 for f in factors)
    peak = factors.index(max(factors))
    assert all(f >= floor - 1e-9 for f in factors[peak:])
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(factors[: peak + 1]))
    assert all(a + 1e-12 >= b for a, b in itertools.pairwise(factors[peak:]))
