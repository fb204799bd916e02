"""Dataset formats: write -> read round trips (LeRobot v2.1, robomimic/LIBERO HDF5, mp4 folder), format
detection, and the errors bad files give."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cola_train.data import DatasetError, Episode, detect_format, load_episodes, write_lerobot
from cola_train.data.video import encode_video

FRAME_TOLERANCE = 2  # lossless 4:4:4 h264 leaves only the RGB <-> YUV rounding


def make_frames(rng: np.random.Generator, length: int, size: int = 32) -> np.ndarray:
    """A bright square moving over a dark gradient: structured like real footage, different every frame."""
    y, x = np.mgrid[:size, :size]
    frames = np.empty((length, size, size, 3), dtype=np.uint8)
    for t in range(length):
        frame = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)
        top, left = rng.integers(0, size - 8, size=2)
        frame[top : top + 8, left : left + 8] = rng.integers(150, 256, size=3)
        frames[t] = frame
    return frames


def make_episode(
    index: int, length: int, actions: int = 3, states: int = 2, seed: int | None = None
) -> Episode:
    rng = np.random.default_rng(index)
    return Episode(
        frames=make_frames(rng, length),
        actions=rng.normal(size=(length, actions)).astype(np.float32),
        states=rng.normal(size=(length, states)).astype(np.float32),
        index=index,
        seed=seed,
        action_names=[f"a{i}" for i in range(actions)],
        state_names=[f"s{i}" for i in range(states)],
    )


def assert_same_episode(read: Episode, written: Episode, exact_frames: bool = False) -> None:
    assert read.index == written.index and read.seed == written.seed
    assert np.array_equal(read.actions, written.actions) and np.array_equal(read.states, written.states)
    assert read.frames.shape == written.frames.shape and read.frames.dtype == np.uint8
    error = np.abs(read.frames.astype(int) - written.frames.astype(int))
    assert error.max() <= (0 if exact_frames else FRAME_TOLERANCE)


def write_hdf5(path: Path, demos: dict[str, dict[str, np.ndarray]]) -> None:
    """The robomimic/LIBERO layout: data/<demo>/<key> for each given key (e.g. "obs/agentview_rgb")."""
    with h5py.File(path, "w") as handle:
        for demo, datasets in demos.items():
            for key, values in datasets.items():
                handle.create_dataset(f"data/{demo}/{key}", data=values)


def hdf5_demo(episode: Episode, cameras: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    demo = {"actions": episode.actions, "obs/agentview_rgb": episode.frames}
    demo |= {"obs/ee_states": episode.states[:, :1], "obs/gripper_states": episode.states[:, 1:]}
    return demo | {f"obs/{name}": frames for name, frames in (cameras or {}).items()}


@pytest.fixture(scope="module")
def lerobot_dataset(tmp_path_factory) -> tuple[Path, list[Episode]]:
    episodes = [make_episode(0, 12, seed=7), make_episode(1, 9, seed=8), make_episode(2, 15, seed=9)]
    root = write_lerobot(tmp_path_factory.mktemp("lerobot") / "ds", episodes, fps=10, task="push")
    return root, episodes


def copy_of(dataset: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(dataset, tmp_path / "copy"))


# --- round trips -------------------------------------------------------------------------------------------


def test_lerobot_round_trip(lerobot_dataset):
    root, written = lerobot_dataset
    assert detect_format(root) == "lerobot"
    read = load_episodes(root)
    assert len(read) == len(written)
    for got, want in zip(read, written, strict=True):
        assert_same_episode(got, want)
        assert got.action_names == want.action_names and got.state_names == want.state_names


def test_lerobot_layout_is_v2_1(lerobot_dataset):
    root, written = lerobot_dataset
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["total_frames"] == sum(len(e) for e in written)
    assert info["features"]["observation.image"]["dtype"] == "video"
    assert info["features"]["action"]["shape"] == [3]
    table = pq.read_table(root / "data/chunk-000/episode_000001.parquet")
    assert table.column("index").to_pylist() == list(range(12, 21))
    assert table.column("next.done").to_pylist()[-1] is True
    np.testing.assert_allclose(table.column("timestamp").to_numpy(), np.arange(9) / 10, rtol=1e-6)
    assert (root / "videos/chunk-000/observation.image/episode_000002.mp4").is_file()
    lines = [json.loads(line) for line in (root / "meta/episodes.jsonl").read_text().splitlines()]
    assert [(line["length"], line["seed"]) for line in lines] == [(12, 7), (9, 8), (15, 9)]
    stats = json.loads((root / "meta/episodes_stats.jsonl").read_text().splitlines()[0])["stats"]
    assert np.asarray(stats["observation.image"]["mean"]).shape == (3, 1, 1)


def test_lerobot_reader_follows_info_chunks_cameras_and_list_columns(lerobot_dataset, tmp_path):
    root = copy_of(lerobot_dataset[0], tmp_path)
    written = lerobot_dataset[1]
    info = json.loads((root / "meta/info.json").read_text())
    # Two episodes per chunk: episode 2 lives in chunk-001.
    info["chunks_size"] = 2
    for kind, name in (
        ("data", "episode_000002.parquet"),
        ("videos", "observation.image/episode_000002.mp4"),
    ):
        target = root / kind / "chunk-001" / name
        target.parent.mkdir(parents=True)
        (root / kind / "chunk-000" / name).rename(target)
    # A second camera, and the state column as a variable-length list (as older LeRobot writers store it).
    shutil.copytree(
        root / "videos/chunk-000/observation.image", root / "videos/chunk-000/observation.images.wrist"
    )
    shutil.copytree(
        root / "videos/chunk-001/observation.image", root / "videos/chunk-001/observation.images.wrist"
    )
    info["features"]["observation.images.wrist"] = info["features"]["observation.image"]
    (root / "meta/info.json").write_text(json.dumps(info))
    path = root / "data/chunk-000/episode_000000.parquet"
    table = pq.read_table(path)
    state = table.column("observation.state").cast(pa.list_(pa.float32()))
    pq.write_table(
        table.set_column(table.column_names.index("observation.state"), "observation.state", state), path
    )

    for camera in (None, "observation.images.wrist"):
        for got, want in zip(load_episodes(root, camera=camera), written, strict=True):
            assert_same_episode(got, want)
    with pytest.raises(DatasetError, match="no camera 'top'"):
        load_episodes(root, camera="top")


def test_hdf5_round_trip(tmp_path):
    episodes = [make_episode(i, 6 + i, actions=7) for i in range(3)]
    wrist = {i: make_frames(np.random.default_rng(50 + i), len(e)) for i, e in enumerate(episodes)}
    # demo_10 must come after demo_2: demos load in number order, not name order.
    names = ["demo_0", "demo_2", "demo_10"]
    demos = {name: hdf5_demo(episodes[i], {"eye_in_hand_rgb": wrist[i]}) for i, name in enumerate(names)}
    path = tmp_path / "libero_task.hdf5"
    write_hdf5(path, demos)
    assert detect_format(path) == "hdf5"
    read = load_episodes(path)
    for got, want in zip(read, episodes, strict=True):
        assert_same_episode(got, want, exact_frames=True)
        assert got.state_names == ["ee_states_0", "gripper_states_0"]
    for got, want in zip(load_episodes(path, camera="eye_in_hand_rgb"), wrist.values(), strict=True):
        assert np.array_equal(got.frames, want)


def test_directory_of_hdf5_files_loads_all_with_running_indices(tmp_path):
    for name, index in (("b.hdf5", 1), ("a.hdf5", 0)):
        write_hdf5(
            tmp_path / name,
            {"demo_0": hdf5_demo(make_episode(index, 5)), "demo_1": hdf5_demo(make_episode(index, 4))},
        )
    read = load_episodes(tmp_path)
    assert detect_format(tmp_path) == "hdf5"
    assert [e.index for e in read] == [0, 1, 2, 3] and [len(e) for e in read] == [5, 4, 5, 4]


def test_mp4_folder_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    clips = {"b/second.mp4": make_frames(rng, 11), "a_first.mp4": make_frames(rng, 7)}
    for name, frames in clips.items():
        encode_video(tmp_path / name, frames, fps=10)
    assert detect_format(tmp_path) == "mp4"
    read = load_episodes(tmp_path)
    assert [e.index for e in read] == [0, 1]
    for got, want in zip(read, [clips["a_first.mp4"], clips["b/second.mp4"]], strict=True):
        assert got.actions.shape == (len(want), 0) and got.states.shape == (len(want), 0) and got.seed is None
        assert np.abs(got.frames.astype(int) - want.astype(int)).max() <= FRAME_TOLERANCE


# --- bad input ---------------------------------------------------------------------------------------------


def test_path_without_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_episodes(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="holds no dataset"):
        load_episodes(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="unknown kind"):
        load_episodes(tmp_path / "notes.txt")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_video(lerobot_dataset, tmp_path, damage):
    root = copy_of(lerobot_dataset[0], tmp_path)
    video = root / "videos/chunk-000/observation.image/episode_000001.mp4"
    data = video.read_bytes()
    video.write_bytes(b"\x00not a video" * 50 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"episode_000001\.mp4.*corrupt or truncated"):
        load_episodes(root)


def test_video_shorter_than_its_parquet(lerobot_dataset, tmp_path):
    root = copy_of(lerobot_dataset[0], tmp_path)
    encode_video(
        root / "videos/chunk-000/observation.image/episode_000000.mp4",
        make_frames(np.random.default_rng(0), 5),
        10,
    )
    with pytest.raises(DatasetError, match=r"episode_000000\.mp4 has 5 frames .* need 12.*truncated"):
        load_episodes(root)


def test_missing_video(lerobot_dataset, tmp_path):
    root = copy_of(lerobot_dataset[0], tmp_path)
    (root / "videos/chunk-000/observation.image/episode_000002.mp4").unlink()
    with pytest.raises(DatasetError, match=r"missing video .*episode_000002\.mp4"):
        load_episodes(root)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_parquet(lerobot_dataset, tmp_path, damage):
    root = copy_of(lerobot_dataset[0], tmp_path)
    path = root / "data/chunk-000/episode_000002.parquet"
    data = path.read_bytes()
    path.write_bytes(b"PAR1 this is not parquet" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"episode_000002\.parquet.*corrupt or truncated"):
        load_episodes(root)


def test_unsupported_lerobot_version(lerobot_dataset, tmp_path):
    root = copy_of(lerobot_dataset[0], tmp_path)
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps(info | {"codebase_version": "v1.6"}))
    with pytest.raises(DatasetError, match=r"v1\.6.*v2\.x .*v3\.0"):
        load_episodes(root)


def test_hdf5_without_the_expected_keys_lists_what_it_has(tmp_path):
    path = tmp_path / "odd.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("trajectories/x", data=np.zeros(3))
    with pytest.raises(DatasetError, match=r"odd\.hdf5 has no 'data' group \(it has \['trajectories'\]\)"):
        load_episodes(path)
    frames = make_frames(np.random.default_rng(0), 4)
    write_hdf5(path, {"demo_0": {"obs/joint_pos": np.zeros((4, 7)), "actions": np.zeros((4, 7))}})
    with pytest.raises(DatasetError, match=r"demo_0/obs has no camera .*it has \['joint_pos'\]"):
        load_episodes(path)
    write_hdf5(path, {"demo_0": {"obs/agentview_rgb": frames}})
    with pytest.raises(DatasetError, match=r"demo_0 lacks actions: it has \['obs'\]"):
        load_episodes(path)
    write_hdf5(path, {"demo_0": {"obs/agentview_rgb": frames, "actions": np.zeros((3, 7))}})
    with pytest.raises(DatasetError, match="3 actions for 4 frames"):
        load_episodes(path)


def test_corrupt_hdf5(tmp_path):
    path = tmp_path / "broken.hdf5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(DatasetError, match=r"broken\.hdf5.*corrupt"):
        load_episodes(path)


def test_episode_rejects_bad_arrays():
    frames = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    good = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"frames must be uint8 \[T, H, W, 3\]"):
        Episode(frames.astype(np.float32), good, good, index=0)
    with pytest.raises(ValueError, match=r"actions must be float32 \[T=4, D\]"):
        Episode(frames, good[:3], good, index=0)
    with pytest.raises(ValueError, match="states must be float32"):
        Episode(frames, good, good.astype(np.float64), index=0)


def test_writer_refuses_a_directory_that_holds_files(lerobot_dataset):
    with pytest.raises(ValueError, match="not an empty directory"):
        write_lerobot(lerobot_dataset[0], [make_episode(0, 3)], fps=10)


def test_lerobot_written_without_videos_round_trips_exactly(tmp_path):
    episodes = [make_episode(0, 6, seed=1), make_episode(1, 4, seed=2)]
    root = write_lerobot(tmp_path / "png", episodes, fps=10, use_videos=False)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"]["observation.image"]["dtype"] == "image"
    assert info["total_videos"] == 0 and info["video_path"] is None and not (root / "videos").exists()
    cell = pq.read_table(root / "data/chunk-000/episode_000001.parquet").column("observation.image")[0]
    assert cell["bytes"].as_py().startswith(b"\x89PNG") and cell["path"].as_py() is None
    for got, want in zip(load_episodes(root), episodes, strict=True):
        assert_same_episode(got, want, exact_frames=True)


def test_lerobot_image_feature_stored_in_parquet(tmp_path):
    from PIL import Image

    episode = make_episode(0, 4)
    root = write_lerobot(tmp_path / "images", [episode], fps=10)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["observation.images.png"] = {"dtype": "image", "shape": [32, 32, 3], "names": None}
    (root / "meta/info.json").write_text(json.dumps(info))
    path = root / "data/chunk-000/episode_000000.parquet"
    pngs = []
    for frame in episode.frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG")
        pngs.append({"bytes": buffer.getvalue(), "path": None})
    pq.write_table(pq.read_table(path).append_column("observation.images.png", pa.array(pngs)), path)
    (read,) = load_episodes(root, camera="observation.images.png")
    assert_same_episode(read, episode, exact_frames=True)
