"""A run that starts from another run's weights: exact weights at step 0, fresh optimizer and counters, resume
from its own checkpoint, clear errors for a missing or incompatible source, and the CLI flag.
"""

import copy
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from cola_train import build_models, pipeline, train
from cola_train.checkpoint import checkpoint_path, latest_checkpoint, list_checkpoints, load_checkpoint
from cola_train.cli import build_parser, main
from cola_train.init_from import read_source
from cola_train.metrics_log import read_metrics
from engine_helpers import TINY, MovingSquares, tiny_config

BRANCH = {"stages": ["warmup", "joint"], "seed": 1}


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with a trained world model, EMA and LAM decoder (read-only for the tests)."""
    out = tmp_path_factory.mktemp("parent") / "run"
    return train(tiny_config(stages=["pretrain", "lam_recon"]), out, data=MovingSquares())


def _tiny_model(**wm: object) -> dict:
    model = copy.deepcopy(TINY["model"])
    model["wm"].update(wm)
    return model


def _copy(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in tensors.items()}


def _assert_equal(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str) -> None:
    assert actual.keys() == expected.keys(), what
    for key in expected:
        assert torch.equal(actual[key].cpu(), expected[key].cpu()), f"{what}.{key} differs from the source"


def test_new_run_starts_from_the_source_weights_with_fresh_optimizer_and_counters(
    parent: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = load_checkpoint(latest_checkpoint(parent / "checkpoints"))
    at_start = {}
    original = pipeline.run_stage

    def first_stage_sees(session, name):  # type: ignore[no-untyped-def]
        if not at_start:
            at_start.update(
                lam=_copy(session.models.lam.state_dict()),
                wm=_copy(session.models.wm.state_dict()),
                ema=_copy(session.ema.state_dict()),
                ema_updates=session.ema.updates,
                global_step=session.global_step,
            )
        return original(session, name)

    monkeypatch.setattr(pipeline, "run_stage", first_stage_sees)
    child = train(tiny_config(**BRANCH, init_from=str(parent)), tmp_path / "child", data=MovingSquares())

    _assert_equal(at_start["lam"], source.group("lam"), "lam")
    _assert_equal(at_start["wm"], source.group("wm"), "wm")
    _assert_equal(at_start["ema"], source.group("ema"), "ema")
    assert at_start["ema_updates"] == source.state["ema_updates"]
    assert at_start["global_step"] == 0

    # Step counters and the optimizer are the new run's own: 2 warm-up + 2 joint steps.
    final = load_checkpoint(latest_checkpoint(child / "checkpoints"))
    assert (final.state["stage"], final.state["step"], final.state["global_step"]) == ("joint", 2, 4)
    steps = {k: float(v) for k, v in final.group("optim").items() if k.endswith(".step")}
    assert steps and set(steps.values()) == {2.0}
    metrics = read_metrics(child)
    assert (metrics[0]["stage"], metrics[0]["step"], metrics[0]["global_step"]) == ("warmup", 0, 1)

    config = json.loads((child / "config.json").read_text())
    assert config["init_from"] == str(parent) and config["stages"] == ["warmup", "joint"]
    events = [json.loads(line) for line in (child / "events.jsonl").read_text().splitlines()]
    init = next(e for e in events if e["event"] == "init_from")
    assert init["kind"] == "checkpoint" and init["finished"] and init["loaded"] == ["lam", "wm"]
    assert init["source"] == str(source.path)


def test_resume_continues_from_its_own_checkpoint_not_the_source(parent: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(parent, source)
    config = tiny_config(**BRANCH, init_from=str(source))
    straight = train(config, tmp_path / "straight", data=MovingSquares())
    interrupted = train(config, tmp_path / "interrupted", data=MovingSquares())
    # Back to the state of a run killed after its warm-up: only the warm-up's checkpoint, no models.
    checkpoints = list_checkpoints(interrupted / "checkpoints")
    assert checkpoints[-1] == checkpoint_path(interrupted / "checkpoints", 4)
    checkpoints[-1].unlink()
    shutil.rmtree(interrupted / "models")
    shutil.rmtree(source)  # a resume that read the source again would fail

    train(config, interrupted, resume=True, data=MovingSquares())
    for name in ("lam", "wm"):
        a = load_file(straight / "models" / name / "model.safetensors")
        b = load_file(interrupted / "models" / name / "model.safetensors")
        _assert_equal(b, a, name)
    events = (interrupted / "events.jsonl").read_text()
    assert events.count('"init_from"') == 1


def test_models_only_source_and_checkpoint_file_source(parent: Path, tmp_path: Path) -> None:
    # A pushed run keeps models/ only: its EMA world model seeds both the raw weights and the EMA.
    pushed = tmp_path / "pushed"
    shutil.copytree(parent, pushed, ignore=shutil.ignore_patterns("checkpoints"))
    weights = read_source(pushed)
    saved = {name: load_file(parent / "models" / name / "model.safetensors") for name in ("lam", "wm")}
    assert weights.kind == "models" and weights.ema_updates == 0
    _assert_equal(weights.wm, saved["wm"], "wm")
    _assert_equal(weights.ema, saved["wm"], "ema")

    # The LAM decoder travels when the new run has one (a two-stage branch).
    models = build_models(tiny_config(stages=["lam_recon"]), init_from=pushed)
    _assert_equal(models.lam.state_dict(), saved["lam"], "lam")
    decoder = load_file(parent / "models" / "lam_decoder" / "model.safetensors")
    _assert_equal(models.decoder.state_dict(), decoder, "lam_decoder")

    # A checkpoint file of a run that had not finished (after its pretrain stage).
    first = list_checkpoints(parent / "checkpoints")[0]
    early = read_source(first)
    assert early.details == {"stage": "pretrain", "step": 2, "global_step": 2, "finished": False}
    assert early.decoder is not None


def test_incompatible_source_names_the_fields(parent: Path, tmp_path: Path) -> None:
    wider = tiny_config(**BRANCH, init_from=str(parent), model=_tiny_model(width=48))
    with pytest.raises(ValueError, match=r"wm\.width: source 32, this run 48") as error:
        train(wider, tmp_path / "wider", data=MovingSquares())
    assert "model.lam / model.wm" in str(error.value)
    smaller = tiny_config(**BRANCH, data={"frame_size": 16})
    with pytest.raises(ValueError, match=r"lam\.frame_size: source 32, this run 16"):
        build_models(smaller, init_from=parent)
    # Training-only settings may change.
    build_models(tiny_config(model=_tiny_model(action_dropout=0.5)), init_from=parent)


def test_missing_or_foreign_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"init_from .*nothing.* does not exist"):
        train(tiny_config(init_from=str(tmp_path / "nothing")), tmp_path / "run", data=MovingSquares())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds neither checkpoints/ nor models/"):
        read_source(tmp_path / "empty")
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="must be a cola-train training checkpoint"):
        read_source(tmp_path / "weights.safetensors")
    with pytest.raises(ValueError, match="init_from must be a run directory"):
        tiny_config(init_from="")


def test_cli_init_from_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(["run", "--out", "r", "--init-from", "runs/pretrain"])
    assert args.init_from == "runs/pretrain"
    seen = {}

    def fake_train(config, out, resume, push_to_hub):  # type: ignore[no-untyped-def]
        seen.update(config=config, out=out)
        return Path(out)

    monkeypatch.setattr(pipeline, "train", fake_train)
    assert main(["two-stage", "--preset", "quickstart", "--out", str(tmp_path), "--init-from", "a/b"]) == 0
    assert seen["config"].init_from == "a/b" and seen["config"].stages == ["lam_recon", "wm_finetune"]


def test_cli_missing_source_exits_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--out", str(tmp_path / "run"), "--init-from", str(tmp_path / "gone")])
    assert code == 2
    assert "gone" in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "a bad source leaves no half-made run directory"
