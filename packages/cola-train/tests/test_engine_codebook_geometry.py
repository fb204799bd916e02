"""Training logs the codebook geometry and raises the collapse event when the IDM's outputs collapse, even
though dead-code restarts keep many indices in use."""

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from cola_lam import code_geometry

sys.path.insert(0, str(Path(__file__).parent))
from cola_train import build_models, run_stages
from cola_train.model import CoLA
from engine_helpers import TINY, MovingSquares, tiny_config

GEOMETRY_KEYS = ("latent_spread", "latent_rank", "code_spread")


def _run(tmp_path: Path, collapse: bool) -> tuple[CoLA, list[dict]]:
    # Restarts every step, as in the run where utilization read 0.75-1.0 while every clip got the same action.
    lam = {**TINY["model"]["lam"], "dead_code_steps": 1}
    config = tiny_config(
        stages=["warmup"],
        warmup={"steps": 3},
        model={**TINY["model"], "lam": lam},
        optim={**TINY["optim"], "lr_lam": 1e-9},
    )
    models = build_models(config)
    if collapse:
        head = models.lam.idm.head
        with torch.no_grad():  # the same output (norm 1) for every clip, up to ~1e-5
            head.weight.mul_(1e-4)
            head.bias.fill_(1 / math.sqrt(head.bias.numel()))
    run_stages(config, models, MovingSquares(), ["warmup"], run_dir=tmp_path)
    return models, _jsonl(tmp_path / "metrics.jsonl")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_collapsed_idm_logs_geometry_and_a_collapse_event(tmp_path: Path) -> None:
    _, records = _run(tmp_path, collapse=True)
    assert len(records) == 3
    for record in records:
        assert record["latent_spread"] < 1e-3 and record["code_spread"] < 1e-2 and record["latent_rank"] >= 1
        assert record["collapse"]
        assert any("latent_spread" in w for w in record["collapse_warnings"])
        assert any("code_spread" in w for w in record["collapse_warnings"])
    collapse = [e for e in _jsonl(tmp_path / "events.jsonl") if e["event"] == "codebook_collapse"]
    assert len(collapse) == 1 and collapse[0]["latent_spread"] < 1e-3
    assert "latent_spread" in collapse[0]["message"]


def test_logged_geometry_is_that_of_the_quantizer_buffer(tmp_path: Path) -> None:
    models, records = _run(tmp_path, collapse=False)
    assert all(math.isfinite(record[key]) for record in records for key in GEOMETRY_KEYS)
    quantizer = models.lam.quantizer
    # The last record is logged after the last step, which was the quantizer's last forward.
    latents = quantizer.recent_inputs[: int(quantizer.recent_count)]
    geometry = code_geometry(latents, quantizer.codes(), torch.arange(quantizer.num_codes))
    assert records[-1]["latent_spread"] == pytest.approx(geometry.latent_spread)
    assert records[-1]["latent_rank"] == pytest.approx(geometry.latent_effective_rank)
