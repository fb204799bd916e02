"""benchmarks/denoiser_probe.py: the frame averaging its resolution arms and its scores rely on."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from denoiser_probe import area_resize, pooled_block_area


def test_area_resize_averages_each_block_of_pixels() -> None:
    frames = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 1, 3, 4, 4)
    small = area_resize(frames, 2)
    assert small.shape == (2, 1, 3, 2, 2)
    assert small[1, 0, 2, 1, 0] == frames[1, 0, 2, 2:4, 0:2].mean()
    assert area_resize(frames, 4) is frames


@pytest.mark.parametrize("size", [3, 8])
def test_area_resize_refuses_sizes_that_do_not_divide_the_frames(size: int) -> None:
    with pytest.raises(ValueError, match="must divide the collected size 4"):
        area_resize(torch.zeros(1, 3, 4, 4), size)


def test_pooled_block_area_is_a_ratio_of_totals() -> None:
    white = torch.ones(3, 8, 8)
    block = white.clone()
    block[:, 2:6, 2:6] = torch.tensor([118.0, 136.0, 153.0])[:, None, None] / 127.5 - 1  # PushT's block
    half = white.clone()
    half[:, 2:4, 2:6] = block[:, 2:4, 2:6]
    real = torch.stack([block, block])
    assert pooled_block_area(real, real) == 1.0
    assert pooled_block_area(torch.stack([half, block]), real) == 0.75
    assert pooled_block_area(torch.stack([white, white]), real) == 0.0


def test_train_seconds_cuts_the_steps_to_the_budget_and_the_line_says_so(
    tmp_path, monkeypatch, capsys
) -> None:
    pytest.importorskip("gym_pusht")  # collects PushT
    import denoiser_probe
    from cola_train.data import collect_pusht

    data = collect_pusht(
        tmp_path / "pusht", 5, seed=0, episode_length=30, frame_size=32, progress=False, use_videos=False
    )
    argv = ["denoiser_probe.py", str(data), "--name", "budget", "--steps", "400", "--batch", "2"]
    argv += ["--patch", "4", "--train-seconds", "0.001", "--device", "cpu", "--sample-steps", "2"]
    argv += ["--train-pairs", "8", "--picture", str(tmp_path / "probe.png")]
    monkeypatch.setattr(sys, "argv", argv)
    denoiser_probe.main()
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["steps"] == denoiser_probe.TIMED_STEPS  # the budget was spent before the timing ended
    assert line["train_pairs"] == 8 and "held_out" in line and "trained" in line
    assert (tmp_path / "probe.png").is_file() and (tmp_path / "probe_trained.png").is_file()
