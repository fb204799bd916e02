"""A run directory is never silently wrong: one process at a time, a failed start leaves nothing behind,
orphan temporaries and torn log lines are cleaned on resume, swapped data and corrupt or incomplete weights
are named, a full disk says what was kept and how to resume, and a NaN frame names its step."""

from __future__ import annotations

import errno
import json
import logging
import math
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))
from cola_train import build_models, load_trained, run_stages, train
from cola_train import metrics_log as metrics_module
from cola_train.checkpoint import latest_checkpoint
from cola_train.data import write_lerobot
from cola_train.metrics_log import read_metrics
from cola_train.quickstart import quickstart
from cola_train.run_files import RunStorageError
from cola_train.run_lock import RunLock
from engine_helpers import MovingSquares, tiny_config
from test_data_formats import make_episode

SHORT = {"stages": ["pretrain", "joint"], "pretrain": {"steps": 4}, "joint": {"steps": 4}}


def _losses(run_dir: Path) -> dict[tuple[str, int], float]:
    return {(r["stage"], r["step"]): r["loss"] for r in read_metrics(run_dir)}


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict[tuple[str, int], float]:
    """The losses of the uninterrupted SHORT run that every interrupted one must reproduce."""
    run_dir = train(tiny_config(**SHORT), tmp_path_factory.mktemp("straight") / "run", data=MovingSquares())
    return _losses(run_dir)


def test_a_second_process_on_a_run_directory_gets_a_clear_error(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with RunLock(run_dir), pytest.raises(ValueError, match=r"is in use by another cola-train process"):
        train(tiny_config(stages=["pretrain"]), run_dir, data=MovingSquares())
    assert not (run_dir / "config.json").exists()
    config = tiny_config(stages=["pretrain"])
    with RunLock(run_dir), pytest.raises(ValueError, match=r"is in use by another cola-train process"):
        run_stages(config, build_models(config), MovingSquares(), ["pretrain"], run_dir=run_dir)
    with RunLock(run_dir):
        pass  # released on exit, however the holder left
    with RunLock(tmp_path / "q"), pytest.raises(ValueError, match="in use by another"):
        quickstart(tmp_path / "q", overrides=["pretrain.steps=1"])
    assert not (tmp_path / "q" / "data").exists(), "the second quickstart collected nothing"


def test_a_failed_start_writes_nothing_a_rerun_would_trip_on(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"model\.lam\.'widht'"):
        quickstart(tmp_path / "q", overrides=["model.lam.widht=3"])
    assert not (tmp_path / "q").exists(), "nothing collected before the config was found wrong"
    config = tiny_config(stages=["pretrain"], data={"path": str(tmp_path / "missing")})
    with pytest.raises(ValueError, match="does not exist"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run" / "config.json").exists()
    train(tiny_config(stages=["pretrain"]), tmp_path / "run", resume=True, data=MovingSquares())
    assert (tmp_path / "run" / "config.json").exists()


def test_orphan_temporaries_are_removed_on_resume(tmp_path: Path, caplog) -> None:
    run_dir = train(tiny_config(stages=["pretrain"]), tmp_path / "run", data=MovingSquares())
    orphans = [run_dir / "checkpoints" / ".tmp-abc.safetensors", run_dir / ".tmp-xyz"]
    for orphan in orphans:
        orphan.write_bytes(b"\0" * 4096)
    with caplog.at_level(logging.WARNING, "cola_train"):
        train(tiny_config(stages=["pretrain"]), run_dir, resume=True, data=MovingSquares())
    assert not any(orphan.exists() for orphan in orphans)
    assert "left by an interrupted write" in caplog.text


def test_a_torn_last_log_line_is_dropped_on_resume(tmp_path: Path, caplog) -> None:
    run_dir = train(tiny_config(stages=["pretrain"]), tmp_path / "run", data=MovingSquares())
    before = _losses(run_dir)
    for name in ("metrics.jsonl", "events.jsonl"):
        with open(run_dir / name, "a") as file:
            file.write('{"stage": "pretrain", "step": 1, "loss": 0.12')  # a disk that filled mid-record
    with caplog.at_level(logging.WARNING, "cola_train"):
        train(tiny_config(stages=["pretrain"]), run_dir, resume=True, data=MovingSquares())
    assert caplog.text.count("dropped the torn last line") == 2
    assert _losses(run_dir) == before
    assert all(json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines())


def test_a_swapped_dataset_is_reported_on_resume(tmp_path: Path, caplog) -> None:
    data = tmp_path / "data"
    write_lerobot(data, [make_episode(0, 6), make_episode(1, 6)], fps=10)
    config = tiny_config(stages=["pretrain"], data={"path": str(data)}, train={"batch_size": 2})
    run_dir = train(config, tmp_path / "run")
    assert json.loads((run_dir / "data.json").read_text())["path"] == str(data.resolve())
    with caplog.at_level(logging.WARNING, "cola_train"):
        train(config, run_dir, resume=True)
    assert "changed since this run started" not in caplog.text
    (data / "meta" / "info.json").unlink()
    write_lerobot(tmp_path / "other", [make_episode(5, 6), make_episode(6, 6)], fps=10)
    for part in ("meta", "data", "videos"):
        (data / part).rename(tmp_path / f"old-{part}")
        (tmp_path / "other" / part).rename(data / part)
    with caplog.at_level(logging.WARNING, "cola_train"):
        train(config, run_dir, resume=True)
    assert "changed since this run started" in caplog.text
    assert any('"data_changed"' in line for line in (run_dir / "events.jsonl").read_text().splitlines())


def test_a_run_config_that_is_not_json_is_named(tmp_path: Path) -> None:
    run_dir = train(tiny_config(stages=["pretrain"]), tmp_path / "run", data=MovingSquares())
    (run_dir / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=rf"{run_dir / 'config.json'} \(the run's config\) cannot be read"):
        train(tiny_config(stages=["pretrain"]), run_dir, resume=True, data=MovingSquares())
    with pytest.raises(ValueError, match=r"config\.json \(the run's config\) cannot be read as JSON"):
        load_trained(run_dir)


def test_corrupt_or_incomplete_weights_are_named_on_resume_and_load(tmp_path: Path) -> None:
    config = tiny_config(stages=["pretrain"], pretrain={"steps": 4})
    run_dir = train(config, tmp_path / "run", data=MovingSquares())
    newest = latest_checkpoint(run_dir / "checkpoints")
    data = bytearray(newest.read_bytes())
    data[-3] ^= 0x10
    newest.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{newest} is corrupt.*delete it to resume from the older"):
        train(config, run_dir, resume=True, data=MovingSquares())
    weights = run_dir / "models" / "wm" / "model.safetensors"
    state = load_file(str(weights))
    del state["final_layer.linear.bias"]
    save_file(state, str(weights))
    with pytest.raises(ValueError, match=rf"cannot load ActionConditionedDiT .*{weights} is corrupt"):
        load_trained(run_dir)
    (weights.parent / "checksums.json").unlink()
    with pytest.raises(ValueError, match=r"missing keys \['final_layer\.linear\.bias'\]"):
        load_trained(run_dir)
    with pytest.raises(ValueError, match=r"missing keys \['final_layer\.linear\.bias'\]"):
        (run_dir / "checkpoints").rename(tmp_path / "no-checkpoints")  # --init-from then reads models/
        train(tiny_config(stages=["joint"], init_from=str(run_dir)), tmp_path / "next", data=MovingSquares())


@pytest.mark.parametrize(
    ("code", "words"), [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")]
)
def test_a_full_or_read_only_disk_mid_run_says_what_was_kept(
    tmp_path: Path, monkeypatch, straight, code: int, words: str
) -> None:
    real_append = metrics_module._append
    calls = []

    def fails_on_the_sixth(path: Path, record: dict) -> None:
        calls.append(path)
        if len(calls) == 6:
            with open(path, "a") as file:
                file.write(json.dumps(record)[:25])  # what fit before the disk was full
            raise OSError(code, words)
        real_append(path, record)

    monkeypatch.setattr(metrics_module, "_append", fails_on_the_sixth)
    run_dir = tmp_path / "run"
    with pytest.raises(RunStorageError, match=words) as error:
        train(tiny_config(**SHORT), run_dir, data=MovingSquares())
    kept = latest_checkpoint(run_dir / "checkpoints")
    assert f"kept: checkpoint {kept}" in str(error.value) and "--resume" in str(error.value)
    monkeypatch.setattr(metrics_module, "_append", real_append)  # space freed
    train(tiny_config(**SHORT), run_dir, resume=True, data=MovingSquares())
    assert _losses(run_dir) == straight


def test_a_nan_frame_through_the_python_api_names_the_step() -> None:
    config = tiny_config(stages=["pretrain"])
    data = MovingSquares()
    data.clips[3][1, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match=r"bad data in stage 'pretrain' at step \d+: clip\(s\) \[3\]"):
        run_stages(config, build_models(config), data, ["pretrain"])
