"""ClipDataset: clip shapes, values, alignment, resizing, the split by episode, and its errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from cola_train.data import ClipDataset, Episode, split_of
from hypothesis import given, settings
from hypothesis import strategies as st


def make_episode(index: int, length: int, size: int = 16) -> Episode:
    """Frame t is filled with value t (mod 256), so every clip frame says where it came from."""
    frames = np.broadcast_to(
        (np.arange(length) % 256).astype(np.uint8)[:, None, None, None], (length, size, size, 3)
    )
    rows = np.arange(length, dtype=np.float32)[:, None]
    return Episode(
        frames=np.ascontiguousarray(frames),
        actions=np.concatenate([rows, rows + 1000 * index], axis=1),
        states=np.concatenate([rows * 2, rows * 3, rows * 4], axis=1),
        index=index,
    )


def test_clip_shapes_values_and_alignment():
    episodes = [make_episode(0, 20), make_episode(1, 11)]
    dataset = ClipDataset(episodes, clip_length=4, frame_skip=3)
    span = (4 - 1) * 3 + 1
    assert len(dataset) == (20 - span + 1) + (11 - span + 1)
    item = dataset[len(dataset) - 1]
    assert item["episode"] == 1 and item["start"] == 11 - span
    video = item["video"]
    assert video.shape == (4, 3, 16, 16) and video.dtype == torch.float32
    frame_numbers = np.arange(item["start"], item["start"] + span, 3)
    expected = torch.tensor(frame_numbers, dtype=torch.float32) / 127.5 - 1
    assert torch.equal(video[:, 0, 0, 0], expected)
    assert torch.equal(item["actions"][:, 0], torch.tensor(frame_numbers, dtype=torch.float32))
    assert torch.equal(item["actions"][:, 1], torch.tensor(frame_numbers + 1000.0))
    assert item["states"].shape == (4, 3)
    # transition i holds every action from clip frame i up to (not including) clip frame i + 1
    transitions = item["transition_actions"]
    assert transitions.shape == (3, 3, 2)
    steps = torch.arange(item["start"], item["start"] + span - 1, dtype=torch.float32).view(3, 3)
    assert torch.equal(transitions[..., 0], steps)
    assert torch.equal(transitions[:, 0], item["actions"][:-1])
    first = dataset[0]
    assert first["episode"] == 0 and first["start"] == 0


def test_values_span_minus_one_to_one():
    frames = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    frames[1] = 255
    frames[2, :, :4] = 255
    empty = np.zeros((3, 0), dtype=np.float32)
    video = ClipDataset([Episode(frames, empty, empty, index=0)], clip_length=3)[0]["video"]
    assert video[0].eq(-1).all() and video[1].eq(1).all()
    assert video.min() == -1 and video.max() == 1


def test_resize_with_antialiasing_keeps_range_and_constant_frames():
    episode = make_episode(0, 6, size=32)
    resized = ClipDataset([episode], clip_length=3, size=12)[2]["video"]
    assert resized.shape == (3, 3, 12, 12)
    expected = torch.tensor([2.0, 3.0, 4.0]) / 127.5 - 1
    # (torch.testing.assert_close would import torch.distributed: seconds for one comparison)
    assert torch.allclose(resized[:, :, 5, 5], expected[:, None].expand(3, 3), atol=1e-6)
    noisy = np.random.default_rng(0).integers(0, 256, size=(4, 32, 48, 3), dtype=np.uint8)
    empty = np.zeros((4, 0), dtype=np.float32)
    video = ClipDataset([Episode(noisy, empty, empty, index=0)], clip_length=4, size=(16, 24))[0]["video"]
    assert video.shape == (4, 3, 16, 24) and video.min() >= -1 and video.max() <= 1


def test_stride_and_dataloader_batches():
    dataset = ClipDataset([make_episode(0, 12)], clip_length=3, stride=4)
    assert [dataset[i]["start"] for i in range(len(dataset))] == [0, 4, 8]
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2)))
    assert batch["video"].shape == (2, 3, 3, 16, 16) and batch["start"].tolist() == [0, 4]
    with pytest.raises(IndexError):
        dataset[3]


def test_split_is_stable_disjoint_and_order_free():
    indices = list(range(40))
    split = split_of(indices)
    assert split == split_of(list(reversed(indices)))
    assert sorted(split) == indices
    counts = {name: sum(1 for value in split.values() if value == name) for name in ("train", "val", "test")}
    assert counts == {"train": 32, "val": 4, "test": 4}
    # Pinned: the split must not change between runs, machines or library versions.
    assert [i for i in indices if split[i] == "val"] == [2, 15, 32, 33]
    assert [i for i in indices if split[i] == "test"] == [5, 6, 20, 31]

    episodes = [make_episode(i, 5, size=4) for i in range(12)]
    seen = {}
    for name in ("train", "val", "test"):
        dataset = ClipDataset(episodes, clip_length=2, split=name)
        seen[name] = set(dataset.episode_indices)
        assert all(split_of(range(12))[i] == name for i in seen[name])
    assert set.union(*seen.values()) == set(range(12))
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"])


@settings(max_examples=50, deadline=None)
@given(
    indices=st.sets(st.integers(0, 10**6), min_size=1, max_size=200),
    val=st.floats(0.0, 0.45),
    test=st.floats(0.0, 0.45),
)
def test_split_property(indices, val, test):
    split = split_of(sorted(indices), (val, test))
    assert set(split) == indices and set(split.values()) <= {"train", "val", "test"}
    assert split == split_of(sorted(indices, reverse=True), (val, test))
    n_val = sum(1 for v in split.values() if v == "val")
    n_test = sum(1 for v in split.values() if v == "test")
    if len(indices) >= 3:
        assert (n_val >= 1) == (val > 0) and (n_test >= 1) == (test > 0)
    assert n_val + n_test <= len(indices)


def test_short_episodes_are_skipped_with_a_warning_or_rejected():
    with pytest.warns(UserWarning, match=r"skipping 1 episode\(s\) shorter than one clip of 7 frames"):
        dataset = ClipDataset([make_episode(0, 10), make_episode(1, 6)], clip_length=4, frame_skip=2)
    assert dataset.episode_indices == [0]
    with pytest.raises(ValueError, match=r"every episode is shorter than one clip .* longest has 6 frames"):
        ClipDataset([make_episode(0, 5), make_episode(1, 6)], clip_length=8)


def test_bad_arguments():
    episodes = [make_episode(0, 10)]
    with pytest.raises(ValueError, match="must be positive"):
        ClipDataset(episodes, clip_length=0)
    with pytest.raises(ValueError, match="split must be None or one of"):
        ClipDataset(episodes, clip_length=2, split="holdout")
    with pytest.raises(ValueError, match="at least one episode"):
        ClipDataset([], clip_length=2)
    with pytest.raises(ValueError, match="split 'val' holds no episodes"):
        ClipDataset(episodes, clip_length=2, split="val")
    with pytest.raises(ValueError, match="different frame shapes"):
        ClipDataset([make_episode(0, 5, size=8), make_episode(1, 5, size=16)], clip_length=2)
    with pytest.raises(ValueError, match="fractions"):
        split_of([1, 2, 3], (0.6, 0.5))


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=5),
    clip_length=st.integers(1, 6),
    frame_skip=st.integers(1, 3),
    stride=st.integers(1, 4),
)
def test_every_clip_is_a_window_of_its_episode(lengths, clip_length, frame_skip, stride):
    span = (clip_length - 1) * frame_skip + 1
    episodes = [make_episode(i, n, size=2) for i, n in enumerate(lengths)]
    if all(n < span for n in lengths):
        with pytest.raises(ValueError, match="shorter than one clip"):
            ClipDataset(episodes, clip_length, frame_skip=frame_skip, stride=stride)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = ClipDataset(episodes, clip_length, frame_skip=frame_skip, stride=stride)
    assert len(dataset) == sum((n - span) // stride + 1 for n in lengths if n >= span)
    for item in (dataset[i] for i in range(len(dataset))):
        length = lengths[item["episode"]]
        assert item["start"] % stride == 0 and item["start"] + span <= length
        frame_numbers = torch.arange(item["start"], item["start"] + span, frame_skip, dtype=torch.float32)
        assert torch.equal(item["actions"][:, 0], frame_numbers)
        assert torch.equal(item["video"][:, 0, 0, 0], frame_numbers / 127.5 - 1)
