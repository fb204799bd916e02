"""The controllability targets of the quickstart's CoLA run (latent actions from its own IDM), end to end:
``cola-train quickstart`` (about 15 min on 2 cores), then ``cola-eval report`` on its held-out episodes.

Not met yet (the keypoint IDM's quickstart, benchmarks/results/2026-12-01-keypoint-idm.md): utilization, code
spread, no collapse warning and the probe are met (0.72, 0.31, none, R^2 0.67 on the agent's displacement);
the agent error ratio (0.79), delta-PSNR (0.14 dB) and the moving-pixel delta (0.37 dB) are not. The test
is a strict xfail: it starts failing the day the targets are met, and then the mark goes.
"""

from pathlib import Path

import pytest

pytest.importorskip("gym_pusht")


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True, reason="the agent ratio and the PSNR deltas are not met yet (see module docstring)"
)
def test_quickstart_cola_run_meets_the_controllability_targets(tmp_path: Path) -> None:
    from cola_eval import ReportOptions, write_report
    from cola_train.quickstart import quickstart

    run = quickstart(tmp_path / "q")
    report = write_report([str(run)], tmp_path / "report", ReportOptions(max_clips=32))
    metrics = report["runs"][0]["metrics"]
    value = {key: entry["value"] for key, entry in metrics.items() if isinstance(entry, dict)}
    assert value["codebook/utilization"] >= 0.5, value
    assert value["codebook/code_spread"] >= 0.1, value
    assert not any(note.startswith("codebook:") for note in report["runs"][0]["notes"]), report["runs"][0][
        "notes"
    ]
    assert value["delta_psnr"] >= 0.3, value
    assert value["moving_delta_psnr"] >= 0.7, value
    assert value["agent_error_ratio"] <= 2 / 3, value
    assert value["probe/agent_displacement/embedding/r2"] >= 0.5, value
