"""The model card (README.md) of a run pushed to the Hub: metadata the Hub indexes (library, tags, licence,
paper), how to load the run and each model, the run's measured metrics and its training config."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCardData

from cola_train.metrics_log import read_metrics

PAPER = "https://arxiv.org/abs/2510.26433"
TAGS = ["cola", "latent-action-model", "world-model", "video-generation", "arxiv:2510.26433"]


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return "n/a" if not math.isfinite(value) else f"{value:.4g}"


def _events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _metrics_section(run_dir: Path) -> list[str]:
    """One row per stage: its steps and final loss (stage_end events), then the last logged value of every
    numeric metric of that stage (metrics.jsonl)."""
    ends = {e["stage"]: e for e in _events(run_dir) if e.get("event") == "stage_end"}
    last: dict[str, dict[str, Any]] = {}
    for record in read_metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []:
        last.setdefault(str(record.get("stage", "run")), {}).update(record)
    if not ends and not last:
        return ["No metrics were logged."]
    lines = ["| stage | steps | final loss | last logged values |", "|---|---|---|---|"]
    for stage in dict.fromkeys([*ends, *last]):
        end = ends.get(stage, {})
        values = ", ".join(
            f"{key} {_number(value)}"
            for key, value in sorted(last.get(stage, {}).items())
            if key not in ("stage", "step", "global_step") and isinstance(value, int | float)
        )
        lines.append(
            f"| {stage} | {end.get('steps', 'n/a')} | {_number(end.get('final_loss', 'n/a'))} | {values} |"
        )
    return lines


def model_card(run_dir: str | Path, repo_id: str) -> str:
    """The README.md text for the run in `run_dir` pushed as `repo_id`."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    models = sorted(p.name for p in (run_dir / "models").iterdir() if (p / "config.json").is_file())
    data = ModelCardData(library_name="cola-train", license="mit", tags=TAGS)
    loads = {
        "lam": "from cola_lam import LatentActionModel\n"
        f'lam = LatentActionModel.from_pretrained("{repo_id}", subfolder="lam")',
        "wm": "from cola_wm import ActionConditionedDiT\n"
        f'wm = ActionConditionedDiT.from_pretrained("{repo_id}", subfolder="wm")  # EMA weights',
        "lam_decoder": "from cola_lam import LAMDecoder\n"
        f'decoder = LAMDecoder.from_pretrained("{repo_id}", subfolder="lam_decoder")',
        "real_actions": "from cola_train.real_actions import RealActionEncoder\n"
        f'encoder = RealActionEncoder.from_pretrained("{repo_id}", subfolder="real_actions")',
    }
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {repo_id}",
        "",
        f"A [CoLA]({PAPER}) run (latent actions co-evolving with a world model), trained by `cola-train`",
        f"with stages {', '.join(config.get('stages', []))}; models {', '.join(models)} (under `models/`).",
        "",
        "## Load",
        "",
        "```python",
        "from cola_train import load_trained",
        f'run = load_trained("{repo_id}")  # config, LAM, world model (EMA), decoder if any',
        *(loads[name] for name in models if name in loads),
        "```",
        "",
        f'or `hf download {repo_id} --local-dir RUN`, then `load_trained("RUN")`. Evaluate with',
        f"`cola-eval report {repo_id}`.",
        "",
        "## Measured metrics",
        "",
        *_metrics_section(run_dir),
        "",
        "## Training config",
        "",
        "```json",
        json.dumps(config, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
