"""Codebook health over an evaluation set (which codes the LAM picks) and over training (metrics.jsonl)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from cola_eval.batches import clip_batches

if TYPE_CHECKING:
    from cola_lam import CodebookGeometry

CODEBOOK_CURVES = ("utilization", "perplexity", "entropy", "max_share", "latent_spread", "code_spread")


@dataclass
class CodebookUsage:
    """Code picks over a dataset: per codebook entry, and per combined latent action (one code per token);
    with ``geometry``, how far apart the IDM's outputs and the used codes lie (``cola_lam.code_geometry``),
    which catches an IDM that gives every clip the same action while the picks still spread."""

    code_counts: torch.Tensor  # int64 [num_codes], over all tokens
    action_counts: Counter  # (code_token0, code_token1, ...) -> number of transitions
    num_transitions: int
    geometry: CodebookGeometry | None = None

    def health(self) -> dict[str, Any]:
        """Usage stats, the geometry (latent_spread, latent_rank, code_spread) when known, and the collapse
        warnings of both."""
        from cola_lam import CodebookStats, collapse_warnings

        stats = CodebookStats.from_counts(self.code_counts)
        geometry = {}
        if self.geometry is not None:
            geometry = {
                "latent_spread": self.geometry.latent_spread,
                "latent_rank": self.geometry.latent_effective_rank,
                "code_spread": self.geometry.used_code_spread,
            }
        return {
            "utilization": stats.utilization,
            "perplexity": stats.perplexity,
            "entropy": stats.entropy,
            "max_share": stats.max_share,
            **geometry,
            "distinct_actions": len(self.action_counts),
            "n_transitions": self.num_transitions,
            "n_tokens": int(self.code_counts.sum()),
            "collapse_warnings": collapse_warnings(stats, self.geometry),
        }

    def ranked_actions(self) -> list[tuple[tuple[int, ...], float]]:
        """Combined latent actions with their usage share, most used first."""
        return [(action, count / self.num_transitions) for action, count in self.action_counts.most_common()]


@torch.no_grad()
def codebook_usage(
    lam: Any, dataset: Sequence[dict[str, Any]], batch_size: int = 16, max_clips: int | None = None
) -> CodebookUsage:
    """Encode every clip, count the codes the quantizer picks, and measure the geometry of the IDM's outputs
    (as the quantizer sees them: unit-norm with ``l2_normalize``) and of the codes used."""
    from cola_lam import code_geometry

    device = next(lam.parameters()).device
    num_codes = lam.config.num_codes
    code_counts = torch.zeros(num_codes, dtype=torch.int64)
    action_counts: Counter = Counter()
    transitions = 0
    latents = []
    for batch in clip_batches(dataset, batch_size, max_clips, "codebook"):
        outputs = lam.idm(batch["video"].to(device))  # [B, T-1, tokens, code_dim]
        indices = lam.quantizer(outputs).indices.cpu()  # [B, T-1, tokens]
        code_counts += torch.bincount(indices.flatten(), minlength=num_codes)
        flat = indices.flatten(0, 1)
        action_counts.update(tuple(row) for row in flat.tolist())
        transitions += flat.shape[0]
        outputs = outputs.flatten(0, -2).float()
        latents.append((F.normalize(outputs, dim=-1) if lam.quantizer.l2_normalize else outputs).cpu())
    geometry = code_geometry(torch.cat(latents), lam.quantizer.codes(), code_counts > 0)
    return CodebookUsage(
        code_counts=code_counts, action_counts=action_counts, num_transitions=transitions, geometry=geometry
    )


def read_training_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The step records of RUN/metrics.jsonl (lines without a 'step' are skipped); ValueError if missing."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"{path} does not exist; training curves need the run's metrics.jsonl")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {number} is not JSON ({err}); the file is corrupt") from err
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def _series(records: list[dict[str, Any]], key: str) -> dict[str, tuple[list[float], list[float]]]:
    """Per stage: (x, y) of one numeric key, x being the global step where logged (else the stage step)."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for record in records:
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            xs, ys = series.setdefault(str(record.get("stage", "run")), ([], []))
            xs.append(float(record.get("global_step", record["step"])))
            ys.append(float(value))
    return series


def plot_training_curves(records: list[dict[str, Any]], out_dir: str | Path, prefix: str = "") -> list[Path]:
    """PNG curves of the loss and of codebook health over training (one line per stage); returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    panels = [("loss", "training loss"), *((key, f"codebook {key}") for key in CODEBOOK_CURVES)]
    available = [(key, title) for key, title in panels if _series(records, key)]
    if not available:
        return written
    fig, axes = plt.subplots(1, len(available), figsize=(4 * len(available), 3.2), squeeze=False)
    stages = list(dict.fromkeys(str(r.get("stage", "run")) for r in records))
    colors = {stage: f"C{i}" for i, stage in enumerate(stages)}  # one colour per stage in every panel
    for ax, (key, title) in zip(axes[0], available, strict=True):
        for stage, (xs, ys) in _series(records, key).items():
            ax.plot(xs, ys, label=stage, linewidth=1.2, color=colors[stage])
        ax.set_title(title)
        ax.set_xlabel("step")
        if key == "loss":
            ax.set_yscale(
                "log" if all(y > 0 for _, ys in _series(records, key).values() for y in ys) else "linear"
            )
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / f"{prefix}training_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written
