"""Controllability metrics: moving-pixel PSNR, the PushT agent read off frames, and the rollout sources
(inferred, adapter, shuffled, random, copy) that evaluate_rollouts scores with them."""

import math

import pytest
import torch
from cola_eval.controllability import (
    agent_position_error,
    agent_positions,
    has_pusht_agent_states,
    masked_psnr,
    moving_mask,
    moving_pixel_psnr,
    pusht_agent_positions,
)
from cola_eval.metrics import psnr
from cola_eval.rollout import Controllability, action_matches, evaluate_rollouts
from cola_lam import LAMConfig, LatentActionModel
from cola_wm import ActionConditionedDiT, DiTConfig
from hypothesis import given, settings
from hypothesis import strategies as st

FRAMES = 4
ROYAL_BLUE = (65, 105, 225)
SLATE_GREY = (119, 136, 153)


def _frames(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), frames=st.integers(1, 3), size=st.integers(2, 9))
def test_masked_psnr_over_every_pixel_is_psnr(seed, frames, size):
    pred, target = _frames(seed, (frames, 3, size, size)), _frames(seed + 1, (frames, 3, size, size))
    mask = torch.ones(frames, size, size, dtype=torch.bool)
    assert torch.allclose(masked_psnr(pred, target, mask), psnr(pred, target), atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), moved=st.lists(st.booleans(), min_size=1, max_size=5))
def test_moving_pixel_psnr_is_nan_exactly_where_nothing_moved(seed, moved):
    reference = _frames(seed, (1, 3, 6, 6))
    target = reference.repeat(len(moved), 1, 1, 1)
    for t, move in enumerate(moved):
        if move:  # one pixel of frame t changes well beyond the threshold
            target[t, :, t % 6, (seed + t) % 6] = -reference[0, :, t % 6, (seed + t) % 6].sign()
    pred = _frames(seed + 7, tuple(target.shape))
    scores = moving_pixel_psnr(pred, target, reference)
    assert scores.shape == (len(moved),)
    assert scores.isnan().tolist() == [not m for m in moved]
    assert moving_mask(reference, target).flatten(1).any(1).tolist() == moved


def test_masked_psnr_rejects_bad_masks():
    frames = _frames(0, (2, 3, 4, 4))
    with pytest.raises(ValueError, match="must be their shape without the channel"):
        masked_psnr(frames, frames, torch.ones(2, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool tensor"):
        masked_psnr(frames, frames, torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match=r"RGB frames \[..., 3, H, W\]"):
        moving_mask(frames[:, :2], frames)


def _canvas(size: int = 64) -> torch.Tensor:
    return torch.full((3, size, size), 255.0)


def _draw_disc(canvas: torch.Tensor, x: float, y: float, radius: float = 1.9, oversample: int = 8) -> None:
    """An antialiased RoyalBlue disc centred at frame px (x, y), blended by pixel coverage."""
    size = canvas.shape[-1]
    offsets = (torch.arange(oversample) + 0.5) / oversample
    centres = (torch.arange(size)[:, None] + offsets[None]).flatten()
    inside = (centres[None, :] - x) ** 2 + (centres[:, None] - y) ** 2 <= radius**2
    coverage = inside.reshape(size, oversample, size, oversample).float().mean((1, 3))
    colour = torch.tensor(ROYAL_BLUE, dtype=torch.float32)[:, None, None]
    canvas.mul_(1 - coverage).add_(coverage * colour)


def _to_unit(canvas: torch.Tensor) -> torch.Tensor:
    return canvas / 127.5 - 1


@settings(max_examples=30, deadline=None)
@given(x=st.floats(6.0, 30.0), y=st.floats(6.0, 58.0), block=st.integers(38, 54))
def test_agent_positions_finds_a_drawn_disc_and_ignores_a_grey_block(x, y, block):
    canvas = _canvas()
    _draw_disc(canvas, x, y)
    found = agent_positions(_to_unit(canvas))
    assert found.shape == (2,)
    assert (found - torch.tensor([x, y])).norm() < 0.3
    canvas[:, block - 6 : block + 6, block - 6 : block + 6] = torch.tensor(SLATE_GREY)[:, None, None]
    assert torch.allclose(agent_positions(_to_unit(canvas)), found)


def test_agent_positions_falls_back_to_the_bluest_pixel():
    canvas = _canvas(8)
    canvas[:, 2, 5] = torch.tensor([200.0, 200.0, 240.0])  # faintly blue, below the agent's threshold
    assert agent_positions(_to_unit(canvas)).tolist() == [5.5, 2.5]


def _pusht_episode(length: int = 12, size: int = 64):
    from cola_train.data import rollout_pusht

    return rollout_pusht(3, 1, length, frame_size=size)


def _unit_video(frames) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_agent_position_error_is_near_zero_on_real_pusht_frames():
    for size in (64, 32):
        episode = _pusht_episode(size=size)
        states = torch.from_numpy(episode.states)
        error = agent_position_error(_unit_video(episode.frames), pusht_agent_positions(states, size))
        assert error.shape == (12,) and error.max() < (0.5 if size == 64 else 0.6)
    with pytest.raises(ValueError, match=r"true_positions must be \(12, 2\)"):
        agent_position_error(_unit_video(episode.frames), torch.zeros(12, 3))


def test_pusht_agent_positions_scales_arena_px_to_each_frame_axis():
    states = torch.tensor([[256.0, 128.0, 1.0, 2.0, 3.0]])
    assert pusht_agent_positions(states, 64).tolist() == [[32.0, 16.0]]
    assert pusht_agent_positions(states, (32, 64)).tolist() == [[32.0, 8.0]]
    with pytest.raises(ValueError, match="first two columns"):
        pusht_agent_positions(torch.zeros(3, 1), 64)
    with pytest.raises(ValueError, match="frame_size"):
        pusht_agent_positions(states, (64, 64, 3))


# -- rollouts ------------------------------------------------------------------------------------------------


def _models(frame_size: int, patch: int):
    torch.manual_seed(0)
    lam = LatentActionModel(
        LAMConfig(
            frame_size=frame_size, patch_size=patch, width=32, depth=1, heads=2, num_codes=8, code_dim=8
        )
    ).eval()
    wm = ActionConditionedDiT(
        DiTConfig.preset(
            "tiny",
            frame_size=frame_size,
            patch_size=patch,
            width=32,
            depth=1,
            heads=2,
            num_frames=FRAMES,
            action_dim=16,
        )
    ).eval()
    # k-means codes on noise clips (a fresh codebook names every clip with one code), and the world model's
    # zero-initialised action paths woken, so that other actions make other rollouts.
    noise = torch.rand(6, FRAMES, 3, frame_size, frame_size, generator=torch.Generator().manual_seed(2))
    lam.initialize_codebook(noise * 2 - 1)
    with torch.no_grad():
        for parameter in wm.parameters():
            if not parameter.any():
                parameter.normal_(0, 0.2, generator=torch.Generator().manual_seed(parameter.numel()))
    return lam, wm


def _random_clips(n: int, size: int = 16):
    g = torch.Generator().manual_seed(1)
    return [
        {
            "video": torch.rand(FRAMES, 3, size, size, generator=g) * 2 - 1,
            "actions": torch.rand(FRAMES, 4, generator=g) * 512,
            "states": torch.rand(FRAMES, 5, generator=g) * 512,
        }
        for i in range(n)
    ]


ALL = ("inferred", "shuffled", "random", "copy")


def test_every_source_is_scored_with_counts():
    lam, wm = _models(16, 8)
    result = evaluate_rollouts(
        wm, lam, _random_clips(5), sources=ALL, steps=1, batch_size=2, agent_states=True
    )
    summary = result.summary()
    assert list(summary) == list(ALL) and result.agent_states
    frames, tokens = 5 * (FRAMES - 1), 5 * (FRAMES - 1) * lam.config.tokens_per_action
    for source, scores in summary.items():
        assert scores["n_frames"] == scores["n_agent_frames"] == frames
        assert scores["n_moving_frames"] == frames  # noise clips: every future frame moved
        assert scores["n_action_tokens"] == (0 if source == "copy" else tokens)
        assert (scores["action_recovery"] is None) == (source == "copy")
        assert math.isfinite(scores["moving_psnr"]) and scores["agent_error"] >= 0
    table = result.controllability()
    assert isinstance(table["inferred"], Controllability)
    assert table["shuffled"].psnr == pytest.approx(summary["shuffled"]["psnr"])
    assert 0 <= table["random"].action_recovery <= 100
    assert result.moving_pixel_delta_psnr() == pytest.approx(
        table["inferred"].moving_psnr - table["random"].moving_psnr
    )
    assert result.agent_error_ratio() == pytest.approx(
        table["inferred"].agent_error / table["shuffled"].agent_error
    )
    # another clip's actions make another rollout
    assert not torch.equal(result.videos("shuffled"), result.videos("inferred"))
    copy = result.videos("copy")
    assert torch.equal(copy[:, 1:], copy[:, :1].expand_as(copy[:, 1:]))
    assert torch.equal(copy[:, :1], result.real_videos[:, :1])


def test_shuffled_needs_two_clips_and_states_are_checked():
    lam, wm = _models(16, 8)
    with pytest.raises(ValueError, match="at least 2 clips"):
        evaluate_rollouts(wm, lam, _random_clips(1), sources=("shuffled",), steps=1)
    bare = [{"video": clip["video"]} for clip in _random_clips(2)]
    with pytest.raises(ValueError, match="PushT 'states'"):
        evaluate_rollouts(wm, lam, bare, sources=("copy",), steps=1, agent_states=True)
    auto = evaluate_rollouts(wm, lam, bare, sources=("copy", "inferred"), steps=1)  # no PushT data: no states
    assert not auto.agent_states and auto.summary()["copy"]["n_agent_frames"] == 0
    assert auto.summary()["copy"]["agent_error"] is None
    with pytest.raises(ValueError, match="unknown action source"):
        evaluate_rollouts(wm, lam, bare, sources=("oracle",), steps=1)
    with pytest.raises(ValueError, match="'inferred' and 'shuffled'"):
        auto.agent_error_ratio()


def test_copy_baselines_agent_error_is_the_agents_displacement_on_pusht_clips():
    from cola_train.data import ClipDataset

    clips = ClipDataset([_pusht_episode()], FRAMES)
    assert has_pusht_agent_states(clips) and not has_pusht_agent_states(list(clips))
    lam, wm = _models(64, 16)
    result = evaluate_rollouts(wm, lam, clips, sources=("copy",), batch_size=4, max_clips=6)
    assert result.agent_states  # auto: PushT data names its agent columns
    error = torch.cat(result.scores["copy"].agent_error)
    states = torch.stack([clips[i]["states"] for i in range(6)])
    true = pusht_agent_positions(states, 64)
    displacement = (true[:, 1:] - true[:, :1]).norm(dim=-1)
    assert error.shape == displacement.shape == (6, FRAMES - 1)
    assert torch.allclose(error, displacement, atol=0.5)
    assert displacement.mean() > 1.0  # the agent did move: the test is not about zeros


def test_action_recovery_is_complete_on_the_true_clip():
    lam, _ = _models(16, 8)
    video = torch.stack([clip["video"] for clip in _random_clips(3)])
    true = lam.encode(video).indices
    for context in (1, 2):
        matches = action_matches(lam, video, true, num_context=context)
        assert matches.shape == (3, FRAMES - context, lam.config.tokens_per_action) and matches.all()
    assert not action_matches(lam, video.flip(1), true).all()
    with pytest.raises(ValueError, match="indices of the true clip"):
        action_matches(lam, video, true[:, 1:])
