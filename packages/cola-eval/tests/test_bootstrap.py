"""Bootstrap intervals of the controllability contrasts, on hand-made per-frame scores."""

import math

import pytest
import torch
from cola_eval.bootstrap import contrast_intervals
from cola_eval.rollout import RolloutEvaluation, SourceScores
from hypothesis import given, settings
from hypothesis import strategies as st


def _evaluation(per_source: dict[str, dict[str, torch.Tensor]], batch: int = 3) -> RolloutEvaluation:
    """A RolloutEvaluation whose sources hold the given [clips, frames] scores, split into batches as
    evaluate_rollouts appends them."""
    scores = {}
    for source, fields in per_source.items():
        entry = SourceScores()
        for name, values in fields.items():
            getattr(entry, name).extend(values.split(batch))
        scores[source] = entry
    clips = next(iter(per_source.values()))["psnr"].shape[0]
    return RolloutEvaluation(
        scores=scores,
        real_videos=torch.zeros(clips, 2, 3, 4, 4, dtype=torch.uint8),
        num_context=1,
        agent_states=True,
    )


def _scores(seed: int, clips: int, frames: int, offset: float = 0.0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    moving = torch.rand(clips, frames, generator=generator) * 10 + 15 + offset
    still = torch.rand(clips, frames, generator=generator) < 0.3  # frames where nothing moved
    still[:, 0] = False
    moving[still] = math.nan
    return {
        "psnr": torch.rand(clips, frames, generator=generator) * 5 + 25 + offset,
        "moving_psnr": moving,
        "agent_error": torch.rand(clips, frames, generator=generator) * 10 + 1,
    }


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), clips=st.integers(2, 12), frames=st.integers(1, 4), shift=st.floats(-3, 3))
def test_a_constant_shift_of_the_inferred_scores_shifts_the_intervals_by_it(seed, clips, frames, shift):
    base = _scores(seed, clips, frames)
    random = _scores(seed + 1, clips, frames)
    shifted = {name: values + shift if name != "agent_error" else values for name, values in base.items()}
    before = contrast_intervals(_evaluation({"inferred": base, "random": random}), draws=200)
    after = contrast_intervals(_evaluation({"inferred": shifted, "random": random}), draws=200)
    for key in ("delta_psnr", "moving_delta_psnr"):
        assert after[key] == pytest.approx((before[key][0] + shift, before[key][1] + shift), abs=1e-5)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), clips=st.integers(2, 12), frames=st.integers(1, 4))
def test_the_interval_is_ordered_and_holds_a_constant_contrast_exactly(seed, clips, frames):
    inferred = _scores(seed, clips, frames)
    random = {name: values - 0.5 for name, values in inferred.items()}
    shuffled = {"psnr": inferred["psnr"], "agent_error": inferred["agent_error"] * 2}
    intervals = contrast_intervals(
        _evaluation({"inferred": inferred, "random": random, "shuffled": shuffled})
    )
    assert intervals["delta_psnr"] == pytest.approx((0.5, 0.5))
    assert intervals["moving_delta_psnr"] == pytest.approx((0.5, 0.5))
    assert intervals["agent_error_ratio"] == pytest.approx((0.5, 0.5))
    noisy = contrast_intervals(
        _evaluation({"inferred": inferred, "random": _scores(seed + 1, clips, frames)})
    )
    low, high = noisy["delta_psnr"]
    assert low <= high


def test_the_interval_narrows_with_more_clips_and_covers_the_estimate():
    widths = []
    for clips in (8, 128):
        inferred, random = _scores(0, clips, 4, offset=1.0), _scores(1, clips, 4)
        evaluation = _evaluation({"inferred": inferred, "random": random}, batch=8)
        low, high = contrast_intervals(evaluation)["moving_delta_psnr"]
        estimate = evaluation.moving_pixel_delta_psnr()
        assert low < estimate < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def test_contrasts_without_their_sources_or_scores_are_left_out():
    scores = _scores(0, 4, 2)
    without_moving = {"psnr": scores["psnr"]}
    intervals = contrast_intervals(_evaluation({"inferred": without_moving, "random": without_moving}))
    assert set(intervals) == {"delta_psnr"}
    assert contrast_intervals(_evaluation({"inferred": scores, "copy": scores})) == {}


def test_bad_settings_are_refused():
    evaluation = _evaluation({"inferred": _scores(0, 4, 2), "random": _scores(1, 4, 2)})
    with pytest.raises(ValueError, match="draws"):
        contrast_intervals(evaluation, draws=0)
    with pytest.raises(ValueError, match="level"):
        contrast_intervals(evaluation, level=1.0)
