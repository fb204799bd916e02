"""Bad or partial datasets are errors naming the file and field, never silently-wrong training data."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from cola_train.data import DatasetError, collect_pusht, load_episodes, write_lerobot
from cola_train.data import collect as collect_module
from cola_train.data.cli import run_collect

sys.path.insert(0, str(Path(__file__).parent))
from test_data_formats import make_episode


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_lerobot(tmp_path_factory.mktemp("safety") / "ds", [make_episode(0, 6)], fps=10)


def _copy(dataset: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(dataset, tmp_path / "copy"))


def _set_info(root: Path, **changes) -> None:
    path = root / "meta" / "info.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so only `finally` and `except BaseException` see it."""


def test_a_killed_collection_leaves_no_dataset_behind(tmp_path: Path, monkeypatch) -> None:
    real = collect_module._collect_episode
    calls = []

    def dies_on_the_third(job):
        calls.append(job)
        if len(calls) == 3:
            raise _Killed
        return real(job)

    monkeypatch.setattr(collect_module, "_collect_episode", dies_on_the_third)
    out = tmp_path / "pusht"
    with pytest.raises(_Killed):
        collect_pusht(out, episodes=4, episode_length=5, workers=1, progress=False)
    assert not any(out.iterdir()), "the episodes written so far stayed out of --out"
    assert [p.name for p in tmp_path.iterdir()] == ["pusht"], "and the staging folder is gone"


def test_a_partial_lerobot_folder_is_an_error_not_an_mp4_folder(dataset: Path, tmp_path: Path) -> None:
    partial = _copy(dataset, tmp_path)
    shutil.rmtree(partial / "meta")  # what a collection killed before write_meta left
    with pytest.raises(DatasetError, match=r"looks like a LeRobot dataset without its meta/info\.json"):
        load_episodes(partial)


@pytest.mark.parametrize("fps", [0, -5, "ten", None])
def test_bad_fps_is_an_error(dataset: Path, tmp_path: Path, fps) -> None:
    root = _copy(dataset, tmp_path)
    _set_info(root, fps=fps)
    with pytest.raises(DatasetError, match=r"info\.json: 'fps' must be a positive number"):
        load_episodes(root)


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"chunks_size": 0}, "chunks_size"), ({"features": []}, "features"), ({"data_path": 3}, "data_path")],
)
def test_other_bad_info_fields_are_errors(dataset: Path, tmp_path: Path, changes, field) -> None:
    root = _copy(dataset, tmp_path)
    _set_info(root, **changes)
    with pytest.raises(DatasetError, match=f"'{field}' must"):
        load_episodes(root)


def test_info_json_that_is_a_list_is_an_error(dataset: Path, tmp_path: Path) -> None:
    root = _copy(dataset, tmp_path)
    (root / "meta" / "info.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match=r"info\.json must hold a JSON object .* got a list"):
        load_episodes(root)


def test_episode_lines_without_an_index_are_errors(dataset: Path, tmp_path: Path) -> None:
    root = _copy(dataset, tmp_path)
    (root / "meta" / "episodes.jsonl").write_text('{"tasks": ["push"], "length": 6}\n')
    with pytest.raises(DatasetError, match=r"episodes\.jsonl line 1 has no integer 'episode_index'"):
        load_episodes(root)


def test_collect_out_under_an_existing_file_is_an_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("not a folder")
    args = type("Args", (), {"out": str(tmp_path / "file" / "pusht"), "episodes": 1, "seed": 0})()
    args.episode_length, args.workers, args.explore, args.use_videos = 5, 1, 0.0, True
    assert run_collect(args) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
