"""The report renders from a tiny run trained by the engine; bad runs give clear errors."""

import json
import shutil

import pytest
import torch
from cola_eval.cli import main
from cola_eval.report import ReportOptions, write_report

FAST = [
    "--max-clips",
    "4",
    "--batch-size",
    "4",
    "--sampling-steps",
    "2",
    "--adapter-steps",
    "20",
    "--videos",
    "1",
    "--device",
    "cpu",
]
SOURCES = ("inferred", "adapter", "shuffled", "random", "copy")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from cola_train import RunConfig, train
    from cola_train.data import collect_pusht

    root = tmp_path_factory.mktemp("tiny")
    collect_pusht(root / "data", episodes=8, episode_length=16, workers=1, progress=False, frame_size=32)
    small = {"frame_size": 32, "width": 32, "depth": 1, "heads": 2}
    config = RunConfig.from_dict(
        {
            "stages": ["pretrain", "warmup", "joint"],
            "data": {"path": str(root / "data"), "clip_length": 4, "frame_size": 32},
            "model": {
                "lam": {**small, "num_codes": 8, "code_dim": 8},
                "wm": {**small, "num_frames": 4, "action_dim": 16},
            },
            "train": {
                "batch_size": 4,
                "log_every": 2,
                "checkpoint_every": 100,
                "bf16": False,
                "device": "cpu",
                "progress": False,
            },
            "optim": {"warmup_steps": 2},
            "pretrain": {"steps": 2},
            "warmup": {"steps": 4},
            "joint": {"steps": 2},
        }
    )
    torch.manual_seed(0)
    return train(config, root / "run")


def test_report_renders_from_a_tiny_trained_run(tiny_run, tmp_path, monkeypatch):
    for name in ("COLA_I3D_WEIGHTS", "COLA_I3D_REPO", "COLA_LPIPS_WEIGHTS", "COLA_LPIPS_REPO"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLA_WEIGHTS_DIR", str(tmp_path / "no-fetched-weights"))
    out = tmp_path / "report"
    assert main(["report", str(tiny_run), "--out", str(out), *FAST]) == 0
    report = json.loads((out / "report.json").read_text())
    [row] = report["runs"]
    metrics = row["metrics"]
    for source in SOURCES:
        assert metrics[f"{source}/psnr"]["n"] == 4 * 3 and metrics[f"{source}/psnr"]["value"] is not None
        assert metrics[f"{source}/ssim"]["value"] is not None
        # No weights here: FVD/LPIPS are reported as unavailable with the reason, never as numbers.
        assert metrics[f"{source}/fvd"]["value"] is None and "I3D" in metrics[f"{source}/fvd"]["unavailable"]
        assert (
            metrics[f"{source}/lpips"]["value"] is None
            and "LPIPS" in metrics[f"{source}/lpips"]["unavailable"]
        )
    assert metrics["delta_psnr"]["value"] == pytest.approx(
        metrics["inferred/psnr"]["value"] - metrics["random/psnr"]["value"]
    )
    # The controllability table leads report.json: every source with its counts (PushT data: agent states).
    assert next(iter(report)) == "controllability" and row["sources"] == [*SOURCES]
    table = report["controllability"][row["run"]]
    assert list(table["sources"]) == [*SOURCES]
    for source in SOURCES:
        assert metrics[f"{source}/psnr"]["n"] == metrics[f"{source}/agent_error"]["n"] == 4 * 3
        assert metrics[f"{source}/agent_error"]["value"] >= 0
        assert 0 < metrics[f"{source}/moving_psnr"]["n"] <= 4 * 3
        assert table["sources"][source]["agent_error"] == metrics[f"{source}/agent_error"]
        recovery = metrics[f"{source}/action_recovery"]
        if source == "copy":
            assert recovery["value"] is None and "not a world-model rollout" in recovery["unavailable"]
        else:
            assert recovery["n"] == 4 * 3 * 2 and 0 <= recovery["value"] <= 100
    assert metrics["moving_delta_psnr"]["value"] == pytest.approx(
        metrics["inferred/moving_psnr"]["value"] - metrics["random/moving_psnr"]["value"]
    )
    assert metrics["agent_error_ratio"]["value"] == pytest.approx(
        metrics["inferred/agent_error"]["value"] / metrics["shuffled/agent_error"]["value"]
    )
    assert table["delta_psnr"] == metrics["delta_psnr"]
    for contrast in ("delta_psnr", "moving_delta_psnr", "agent_error_ratio"):  # bootstrap over the 4 clips
        low, high = metrics[contrast]["ci95"]
        assert low <= high
        assert f"[{low:.3g}, {high:.3g}]" in (out / "report.md").read_text()
    assert metrics["codebook/utilization"]["n"] == 4 * 3
    for key in ("latent_spread", "latent_rank", "code_spread"):  # per token: 2 tokens per action
        assert metrics[f"codebook/{key}"]["n"] == 4 * 3 * 2 and metrics[f"codebook/{key}"]["value"] >= 0
    # The code atlas: two DiT windows from held-out start frames, the real clip and its true actions first.
    atlas = row["atlas"]
    assert (atlas["window"], atlas["num_context"], atlas["horizon"]) == (4, 1, 2 * 4 - 1)
    kinds = [r["kind"] for r in atlas["rows"]]
    distinct = int(metrics["codebook/distinct_actions"]["value"])
    assert kinds[:2] == ["real", "true"] and kinds.count("top") == min(8, distinct)
    starts = atlas["start_frames"]
    assert 1 <= starts <= 3
    for atlas_row in atlas["rows"]:
        assert atlas_row["static_psnr"]["n"] == starts * atlas["horizon"]
        assert (
            atlas_row["agent_distance"]["n"] == starts and len(atlas_row["agent_displacement"]["value"]) == 2
        )
    assert atlas["rows"][1]["psnr"]["n"] == starts * atlas["horizon"]
    assert len(row["files"]["code_atlas"]) == 3  # grid PNG, GIF, curves PNG
    assert metrics["probe/embedding/r2"]["n"] > 0 and metrics["probe/one_hot/mse"]["value"] is not None
    for paths in row["files"].values():
        for path in paths if isinstance(paths, list) else [paths]:
            assert (out / path.split("/")[-1]).stat().st_size > 0
    suffixes = {p.suffix for p in out.iterdir()}
    assert {".png", ".gif", ".mp4", ".md", ".json"} <= suffixes
    markdown = (out / "report.md").read_text()
    assert "| run |" in markdown and "delta_psnr" in markdown and "Unavailable metrics" in markdown
    assert markdown.index("## Controllability") < markdown.index("## Rollouts")
    assert "| run | source | PSNR (dB) | moving-pixel PSNR (dB) | agent error (px) |" in markdown
    assert "moving-pixel delta-PSNR (dB)" in markdown and "agent error inferred/shuffled" in markdown
    assert "## Code atlas" in markdown and "codebook/latent_spread" in markdown


def test_run_without_checkpoint_is_a_clear_error(tiny_run, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_run / "config.json", bare / "config.json")
    with pytest.raises(ValueError, match="no saved lam or wm model"):
        write_report([str(bare)], tmp_path / "out")
    with pytest.raises(SystemExit, match=r"cola-eval report: error: .*no saved"):
        main(["report", str(bare), "--out", str(tmp_path / "out")])


def test_model_frame_size_not_matching_the_data_is_a_clear_error(tiny_run, tmp_path):
    copy = tmp_path / "run16"
    shutil.copytree(tiny_run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["data"]["frame_size"] = 16
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="built for 3x32x32 frames but the evaluation data has 3x16x16"):
        write_report([str(copy)], tmp_path / "out", ReportOptions(max_clips=2, adapter=False, device="cpu"))


def test_empty_evaluation_set_is_a_clear_error(tiny_run, tmp_path):
    empty = tmp_path / "empty_data"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no dataset"):
        write_report([str(tiny_run)], tmp_path / "out", ReportOptions(data=str(empty), device="cpu"))
    with pytest.raises(ValueError, match="shorter than one clip"):  # no held-out clip of 100 frames
        write_report([str(tiny_run)], tmp_path / "out", ReportOptions(frames=100, device="cpu"))
    with pytest.raises(ValueError, match="no runs"):
        write_report([], tmp_path / "out")


@pytest.mark.slow
def test_report_with_planning_beside_oracle_and_random(tiny_run, tmp_path):
    options = ReportOptions(
        max_clips=2,
        batch_size=2,
        sampling_steps=1,
        adapter_steps=20,
        videos=0,
        device="cpu",
        planning=True,
        planning_pairs=2,
        readout_steps=20,
        planning_config={
            "goal_offset": 5,
            "budget": 4,
            "samples": 8,
            "horizon": 2,
            "iterations": 1,
            "execute_steps": 1,
            "euler_steps": 1,
        },
    )
    report = write_report([str(tiny_run)], tmp_path / "out", options)
    metrics = report["runs"][0]["metrics"]
    for planner in ("world_model", "oracle", "random"):
        assert metrics[f"planning/{planner}/success"]["n"] == 2
        assert 0.0 <= metrics[f"planning/{planner}/success_strict"]["value"] <= 1.0
    assert metrics["planning/world_model/s_per_mpc_step"]["value"] > 0
    assert "Visual planning" in (tmp_path / "out" / "report.md").read_text()


def test_report_computes_lpips_with_the_fetched_weights(tiny_run, tmp_path, fetched_weights_dir, monkeypatch):
    for name in ("COLA_I3D_WEIGHTS", "COLA_I3D_REPO", "COLA_LPIPS_WEIGHTS", "COLA_LPIPS_REPO"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLA_WEIGHTS_DIR", str(fetched_weights_dir))
    out = tmp_path / "report"
    assert main(["report", str(tiny_run), "--out", str(out), *FAST, "--no-adapter"]) == 0
    text = (out / "report.json").read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"report.json holds {c}"))["runs"][0][
        "metrics"
    ]
    for source in ("inferred", "random"):
        lpips = metrics[f"{source}/lpips"]
        assert lpips["n"] == 4 * 3 and 0 < lpips["value"] < 1.5  # found by default, real network
        # I3D loads too; these 4-frame clips are what keeps FVD out, and the report says so.
        assert "I3D needs >= 10" in metrics[f"{source}/fvd"]["unavailable"]
