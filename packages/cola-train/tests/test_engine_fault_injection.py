"""Kill a run at random points of a checkpoint write and of a metrics append, resume it, and get every loss of
the uninterrupted run back.

In-process kills raise a BaseException at a chosen byte offset (deterministic, fast); one run in a subprocess
is killed for real with SIGKILL in the middle of its checkpoint write, leaving its temporary file behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from cola_train import checkpoint as checkpoint_module
from cola_train import metrics_log as metrics_module
from cola_train import train
from cola_train.checkpoint import list_checkpoints
from cola_train.metrics_log import read_metrics
from engine_helpers import MovingSquares, tiny_config

# 8 steps, checkpoints after global steps 2, 4 (end of pretrain), 6 and 8 (end of joint).
SHORT = {"stages": ["pretrain", "joint"], "pretrain": {"steps": 4}, "joint": {"steps": 4}}
RANDOM = random.Random(19)
CHECKPOINT_KILLS = [(RANDOM.randint(1, 4), RANDOM.random()) for _ in range(3)]
METRICS_KILLS = [(RANDOM.randint(1, 8), RANDOM.random()) for _ in range(3)]


class Killed(BaseException):
    """Stands for SIGKILL: no `except Exception` handler sees it."""


def _losses(run_dir: Path) -> dict[tuple[str, int], float]:
    return {(r["stage"], r["step"]): r["loss"] for r in read_metrics(run_dir)}


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict[tuple[str, int], float]:
    run_dir = train(tiny_config(**SHORT), tmp_path_factory.mktemp("straight") / "run", data=MovingSquares())
    losses = _losses(run_dir)
    assert len(losses) == 8
    return losses


def _resume_and_compare(run_dir: Path, straight: dict) -> None:
    train(tiny_config(**SHORT), run_dir, resume=True, data=MovingSquares())
    assert _losses(run_dir) == straight
    leftovers = [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    assert not leftovers


@pytest.mark.parametrize(("nth", "fraction"), CHECKPOINT_KILLS)
def test_killed_inside_a_checkpoint_write(tmp_path: Path, monkeypatch, straight, nth, fraction) -> None:
    real_save = checkpoint_module.save_file
    writes = []

    def torn_save(tensors, filename, metadata=None):
        writes.append(filename)
        real_save(tensors, filename, metadata=metadata)
        if len(writes) == nth:
            size = os.path.getsize(filename)
            os.truncate(filename, int(size * fraction))  # the bytes that reached the disk
            raise Killed

    monkeypatch.setattr(checkpoint_module, "save_file", torn_save)
    run_dir = tmp_path / "run"
    with pytest.raises(Killed):
        train(tiny_config(**SHORT), run_dir, data=MovingSquares())
    assert len(list_checkpoints(run_dir / "checkpoints")) == min(nth - 1, 2)  # keep_checkpoints = 2
    monkeypatch.setattr(checkpoint_module, "save_file", real_save)
    _resume_and_compare(run_dir, straight)


def test_killed_between_the_manifest_and_the_rename(tmp_path: Path, monkeypatch, straight) -> None:
    real_update = checkpoint_module.update_manifest

    def dies_after_the_third(directory, digests):
        real_update(directory, digests)
        if digests and "000000006" in next(iter(digests)):
            raise Killed

    monkeypatch.setattr(checkpoint_module, "update_manifest", dies_after_the_third)
    run_dir = tmp_path / "run"
    with pytest.raises(Killed):
        train(tiny_config(**SHORT), run_dir, data=MovingSquares())
    monkeypatch.setattr(checkpoint_module, "update_manifest", real_update)
    _resume_and_compare(run_dir, straight)


@pytest.mark.parametrize(("nth", "fraction"), METRICS_KILLS)
def test_killed_inside_a_metrics_append(tmp_path: Path, monkeypatch, straight, nth, fraction) -> None:
    real_append = metrics_module._append
    appends = []

    def torn_append(path: Path, record: dict) -> None:
        if path.name == "metrics.jsonl":
            appends.append(record)
            if len(appends) == nth:
                line = json.dumps(record) + "\n"
                with open(path, "a") as file:
                    file.write(line[: max(1, int(len(line) * fraction))])
                raise Killed
        real_append(path, record)

    monkeypatch.setattr(metrics_module, "_append", torn_append)
    run_dir = tmp_path / "run"
    with pytest.raises(Killed):
        train(tiny_config(**SHORT), run_dir, data=MovingSquares())
    monkeypatch.setattr(metrics_module, "_append", real_append)
    _resume_and_compare(run_dir, straight)


SIGKILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from engine_helpers import MovingSquares, tiny_config
    from test_engine_fault_injection import SHORT
    from cola_train import checkpoint, train

    real_save = checkpoint.save_file
    writes = []

    def save_then_die(tensors, filename, metadata=None):
        writes.append(filename)
        real_save(tensors, filename, metadata=metadata)
        if len(writes) == 3:
            os.truncate(filename, os.path.getsize(filename) // 3)
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.save_file = save_then_die
    train(tiny_config(**SHORT), {out!r}, data=MovingSquares())
    """
)


def test_sigkilled_inside_a_checkpoint_write(tmp_path: Path, straight) -> None:
    run_dir = tmp_path / "run"
    script = SIGKILL_SCRIPT.format(tests=str(Path(__file__).parent), out=str(run_dir))
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    orphans = [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    assert orphans, "the killed write left its temporary file"
    _resume_and_compare(run_dir, straight)
