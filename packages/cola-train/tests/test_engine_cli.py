"""`cola-train run` / `two-stage` / `quickstart`: arguments, clear errors, and the Hub push plumbing."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cola_train import pipeline
from cola_train.cli import build_parser, main
from engine_helpers import MovingSquares, tiny_config


def test_parser_knows_every_command() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "run",
            "--config",
            "c.toml",
            "--set",
            "optim.lr_dit=1e-4",
            "--out",
            "r",
            "--resume",
            "--push-to-hub",
            "me/cola",
        ]
    )
    assert (args.overrides, args.resume, args.push_to_hub, args.stages) == (
        ["optim.lr_dit=1e-4"],
        True,
        "me/cola",
        None,
    )
    assert parser.parse_args(["two-stage", "--out", "r"]).stages == ["lam_recon", "wm_finetune"]
    assert parser.parse_args(["quickstart"]).out == "cola-quickstart"


def test_unknown_key_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--preset", "quickstart", "--set", "optim.lr_ditt=1", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "unknown config key 'optim.lr_ditt'" in error and "did you mean 'lr_dit'" in error


def test_missing_dataset_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "run",
            "--preset",
            "quickstart",
            "--set",
            f'data.path="{tmp_path / "nothing"}"',
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert "nothing" in error and "does not exist" in error and "cola-train collect pusht" in error


def test_empty_dataset_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code = main(
        [
            "run",
            "--preset",
            "quickstart",
            "--set",
            f'data.path="{tmp_path / "empty"}"',
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2
    assert "empty" in capsys.readouterr().err


def test_push_to_hub_uploads_the_run_without_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    class FakeApi:
        def create_repo(self, repo_id: str, exist_ok: bool) -> None:
            calls.append(("create", repo_id, exist_ok))

        def upload_folder(self, folder_path: str, repo_id: str, ignore_patterns: list[str]) -> None:
            calls.append(("upload", repo_id, Path(folder_path), tuple(ignore_patterns)))
            assert (Path(folder_path) / "models" / "wm" / "model.safetensors").exists()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    config = tiny_config(stages=["pretrain"], pretrain={"steps": 1})
    run_dir = pipeline.train(config, tmp_path / "run", data=MovingSquares(), push_to_hub="me/cola")
    assert calls[0] == ("create", "me/cola", True)
    assert calls[1][:3] == ("upload", "me/cola", run_dir) and "checkpoints/*" in calls[1][3]
