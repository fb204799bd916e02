"""A killed and resumed run reproduces the uninterrupted one; bad resumes and NaN losses fail clearly."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from cola_train import TrainingDiverged, load_trained, train
from cola_train.checkpoint import latest_checkpoint, load_checkpoint
from cola_train.metrics_log import read_metrics
from engine_helpers import MovingSquares, tiny_config

STEPS = {"pretrain": {"steps": 4}, "warmup": {"steps": 4}, "joint": {"steps": 4}}


class SlowSquares(MovingSquares):
    """Slow enough per step that a watcher can kill the run between two checkpoints."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        time.sleep(0.03)
        return super().__getitem__(index)


SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from engine_helpers import tiny_config
    from test_engine_resume import STEPS, SlowSquares
    from cola_train import train
    train(tiny_config(**STEPS), {out!r}, data=SlowSquares())
    """
)


def _losses(run_dir: Path) -> dict[tuple[str, int], float]:
    return {(r["stage"], r["step"]): r["loss"] for r in read_metrics(run_dir)}


def test_killed_run_resumes_to_the_same_losses(tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    script = SCRIPT.format(tests=str(Path(__file__).parent), out=str(killed))
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    # Kill once the run has checkpointed inside the warm-up (global step 6 of 12), before it can finish.
    while time.monotonic() < deadline and process.poll() is None:
        newest = latest_checkpoint(killed / "checkpoints")
        if newest is not None and int(newest.stem.split("-")[1]) >= 6:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert not (killed / "models").exists()
    interrupted = load_checkpoint(latest_checkpoint(killed / "checkpoints"))
    assert interrupted.state["stage"] in ("warmup", "joint")

    train(tiny_config(**STEPS), killed, resume=True, data=MovingSquares())
    straight = train(tiny_config(**STEPS), tmp_path / "straight", data=MovingSquares())

    resumed_losses, straight_losses = _losses(killed), _losses(straight)
    assert len(straight_losses) == 12
    assert resumed_losses == straight_losses
    for name in ("lam", "wm"):
        a = load_file(killed / "models" / name / "model.safetensors")
        b = load_file(straight / "models" / name / "model.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs after resume"
    trained = load_trained(killed)
    assert trained.clip_length == 4 and trained.run_dir == killed.resolve()


def test_resume_with_another_config_names_the_keys(tmp_path: Path) -> None:
    config = tiny_config(stages=["pretrain"])
    train(config, tmp_path / "run", data=MovingSquares())
    changed = tiny_config(stages=["pretrain"], optim={"lr_dit": 5e-4}, train={"batch_size": 2})
    with pytest.raises(ValueError, match=r"optim\.lr_dit: 0\.001 -> 0\.0005") as error:
        train(changed, tmp_path / "run", resume=True, data=MovingSquares())
    assert "train.batch_size" in str(error.value)
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        train(config, tmp_path / "run", data=MovingSquares())


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    config = tiny_config(
        stages=["pretrain"],
        pretrain={"steps": 8},
        optim={"lr_dit": 1e30, "grad_clip": 1e30},
        train={"checkpoint_every": 1},
    )
    with pytest.raises(
        TrainingDiverged, match=r"stage 'pretrain' at step (\d+): loss is .*(nan|inf)"
    ) as error:
        train(config, tmp_path / "run", data=MovingSquares())
    step = int(re.search(r"at step (\d+)", str(error.value)).group(1))
    last = load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))
    assert last.state["step"] == step, "the last checkpoint is the one before the bad step"
    assert str(last.path) in str(error.value)
    assert all(torch.isfinite(t).all() for t in last.group("wm").values())


def test_load_trained_without_models_says_so(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no saved lam or wm model"):
        load_trained(tmp_path)
    with pytest.raises(ValueError, match="neither an existing run directory nor a Hub repo id"):
        load_trained(tmp_path / "missing" / "deeper")
