"""benchmarks/block_integrity_study.py: its block segmentation and scores on synthetic PushT frames."""

import sys
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from block_integrity_study import block_area, block_iou, block_mask, scores  # noqa: E402

# PushT's colours (as gym-pusht renders them at 64x64): floor, wall, goal, block, block over goal, agent.
WHITE, WALL, GOAL = (255, 255, 255), (211, 211, 211), (143, 238, 145)
BLOCK, BLOCK_ON_GOAL, AGENT = (118, 136, 153), (144, 163, 184), (79, 126, 255)


def frame(boxes: list[tuple[tuple[int, int, int], slice, slice]]) -> torch.Tensor:
    """A 3x32x32 frame in [-1, 1]: a white floor with each (colour, rows, cols) box painted in order."""
    pixels = torch.tensor(WHITE, dtype=torch.float32)[:, None, None].expand(3, 32, 32).clone()
    for colour, rows, cols in boxes:
        pixels[:, rows, cols] = torch.tensor(colour, dtype=torch.float32)[:, None, None]
    return pixels / 127.5 - 1


def test_block_mask_keeps_the_block_only() -> None:
    scene = frame(
        [
            (WALL, slice(0, 2), slice(None)),
            (GOAL, slice(20, 30), slice(20, 30)),
            (BLOCK, slice(4, 8), slice(4, 12)),
            (BLOCK_ON_GOAL, slice(22, 24), slice(22, 26)),
            (AGENT, slice(14, 17), slice(14, 17)),
        ]
    )
    mask = block_mask(scene)
    assert int(mask.sum()) == 4 * 8 + 2 * 4
    assert mask[4:8, 4:12].all() and mask[22:24, 22:26].all()
    assert not mask[14:17, 14:17].any() and not mask[0:2].any()


def test_iou_and_area_see_a_moved_and_a_dissolved_block() -> None:
    real = frame([(BLOCK, slice(4, 8), slice(4, 12))])
    moved = frame([(BLOCK, slice(4, 8), slice(8, 16))])  # half of it overlaps
    blurred = (real + 1) * 0.3 + (frame([]) + 1) * 0.7 - 1  # faded towards the floor: not block-coloured
    assert float(block_iou(real, real)) == 1.0
    assert abs(float(block_iou(moved, real)) - 16 / 48) < 1e-6
    assert float(block_area(moved, real)) == 1.0
    assert float(block_area(blurred, real)) == 0.0
    assert torch.isnan(block_iou(frame([]), frame([])))
    assert torch.isnan(block_area(real, frame([])))


def test_scores_are_per_frame_and_perfect_for_the_real_clip() -> None:
    clip = torch.stack(
        [
            frame([(BLOCK, slice(4, 8), slice(i, i + 8)), (AGENT, slice(20, 23), slice(i, i + 3))])
            for i in range(3)
        ]
    )[None]
    per_frame = scores(clip, clip)
    assert {name: tuple(v.shape) for name, v in per_frame.items()} == {
        "block_iou": (1, 3),
        "block_area": (1, 3),
        "scene_psnr": (1, 3),
        "psnr": (1, 3),
    }
    assert (per_frame["block_iou"] == 1).all() and (per_frame["scene_psnr"] == 60.0).all()
