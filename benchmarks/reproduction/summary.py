"""The reproduction's results: tables (mean +- std over seeds), the paper's claims checked against the
numbers, and codebook-utilization curves, all computed from the runs' evaluation.json and metrics.jsonl files.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

METHOD_COLUMNS = (
    ("inferred/psnr", "PSNR (dB)"),
    ("inferred/ssim", "SSIM"),
    ("inferred/lpips", "LPIPS"),
    ("inferred/fvd", "FVD"),
    ("delta_psnr", "delta-PSNR (dB)"),
    ("codebook/utilization", "code utilization"),
    ("codebook/entropy", "code entropy (nats)"),
    ("probe/r2", "probe R^2"),
    ("adapter_degradation/psnr_db", "adapter drop (dB PSNR)"),
    ("adapter_degradation/fvd", "adapter drop (FVD)"),
    ("planning/success", "planning success"),
)
ABLATION_COLUMNS = (
    ("codebook/utilization", "code utilization"),
    ("codebook/entropy", "code entropy (nats)"),
    ("codebook/max_share", "top code share"),
    ("inferred/psnr", "PSNR (dB)"),
    ("delta_psnr", "delta-PSNR (dB)"),
    ("probe/r2", "probe R^2"),
)
# (claim, metric, higher is better, the paper's figures)
CLAIMS = (
    (
        "co-evolution simulates video better than two-stage (PSNR)",
        "inferred/psnr",
        True,
        "FVD 158.36 vs 167.77 on LIBERO",
    ),
    (
        "co-evolution simulates video better than two-stage (SSIM)",
        "inferred/ssim",
        True,
        "also PSNR/SSIM/LPIPS",
    ),
    (
        "co-evolution simulates video better than two-stage (FVD)",
        "inferred/fvd",
        False,
        "FVD 158.36 vs 167.77",
    ),
    (
        "real actions through the adapter degrade co-evolution less",
        "adapter_degradation/psnr_db",
        False,
        "FVD +19.0 (74.65 -> 93.68) vs +41.9 (73.54 -> 115.45)",
    ),
    ("co-evolution plans better than two-stage", "planning/success", True, "VP2 13.12% vs 6.94%"),
)


def read_evaluations(out: Path, seeds: list[int], runs: list[str]) -> dict[str, dict[int, dict[str, Any]]]:
    """run -> seed -> evaluation.json (only those that exist)."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for run in runs:
        for seed in seeds:
            path = out / "runs" / f"seed{seed}" / run / "evaluation.json"
            if path.exists():
                found.setdefault(run, {})[seed] = json.loads(path.read_text())
    return found


def aggregate(values: list[float]) -> dict[str, Any]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None, "n": 0, "values": values}
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return {"mean": statistics.fmean(finite), "std": std, "n": len(finite), "values": values}


def per_seed(evaluations: dict[int, dict[str, Any]], key: str) -> dict[int, float | None]:
    return {seed: result["metrics"].get(key) for seed, result in evaluations.items()}


def cell(stats: dict[str, Any], digits: int = 3) -> str:
    if stats["mean"] is None:
        return "unavailable"
    return f"{stats['mean']:.{digits}f} +- {stats['std']:.{digits}f}"


def verdict(cola: dict[int, float | None], baseline: dict[int, float | None], higher: bool) -> dict[str, Any]:
    """Paired by seed (both branch from one pretrained model): does CoLA beat the baseline, and always?"""
    seeds = [s for s in cola if cola[s] is not None and baseline.get(s) is not None]
    if not seeds:
        return {"verdict": "untestable (metric unavailable)", "seeds": 0, "wins": 0, "mean_difference": None}
    sign = 1.0 if higher else -1.0
    differences = [sign * (cola[s] - baseline[s]) for s in seeds]
    wins = sum(d > 0 for d in differences)
    mean = statistics.fmean(differences)
    if wins == len(seeds):
        text = "holds" if len(seeds) > 1 else "holds (one seed)"
    elif mean > 0:
        text = f"mixed (CoLA ahead on average, in {wins}/{len(seeds)} seeds)"
    elif all(d == 0 for d in differences):
        text = "does not hold (tie)"
    else:
        text = f"does not hold (CoLA ahead in {wins}/{len(seeds)} seeds)"
    return {"verdict": text, "seeds": len(seeds), "wins": wins, "mean_difference": sign * mean}


def collapse_finding(joint: dict[int, dict[str, Any]], cola: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The paper's warm-up claim: a randomly initialised LAM trained jointly collapses; after warm-up it does
    not. Collapse signs are the paper's (utilization < 20%, one code > 50%, entropy < 1.0) on held-out
    clips."""
    joint_collapsed = sum(bool(r["collapse_warnings"]) for r in joint.values())
    cola_collapsed = sum(bool(r["collapse_warnings"]) for r in cola.values())
    utilization = verdict(
        per_seed(cola, "codebook/utilization"), per_seed(joint, "codebook/utilization"), True
    )
    if not joint or not cola:
        text = "untestable (runs missing)"
    elif joint_collapsed * 2 > len(joint) and cola_collapsed * 2 <= len(cola):
        text = "holds"
    elif joint_collapsed * 2 > len(joint):
        text = "does not hold (both collapse)"
    elif utilization["verdict"].startswith("holds"):
        text = "partly: warm-up raises utilization, but joint training without it shows no collapse sign"
    else:
        text = "does not hold (no collapse without warm-up)"
    return {
        "claim": "without warm-up the LAM collapses; warm-up prevents it",
        "verdict": text,
        "joint_collapsed_seeds": joint_collapsed,
        "cola_collapsed_seeds": cola_collapsed,
        "seeds": len(joint),
        "utilization": utilization,
    }


def findings(
    evaluations: dict[str, dict[int, dict[str, Any]]], methods: dict[str, str]
) -> list[dict[str, Any]]:
    labels = list(methods)
    two_stage, joint, cola, adaptive = (evaluations.get(methods[label], {}) for label in labels)
    results = [collapse_finding(joint, cola)]
    for name, variant in ((labels[2], cola), (labels[3], adaptive)):
        for claim, key, higher, paper in CLAIMS:
            entry = verdict(per_seed(variant, key), per_seed(two_stage, key), higher)
            entry.update(
                claim=claim, metric=key, cola=name, baseline=labels[0], paper=paper, higher_is_better=higher
            )
            results.append(entry)
    return results


def warmup_end_utilization(run_dir: Path) -> float | None:
    """Training-time code utilization over the last logged window of the warm-up stage."""
    records = _metrics(run_dir)
    warm = [r for r in records if r.get("stage") == "warmup" and "utilization" in r]
    return warm[-1]["utilization"] if warm else None


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def curves(out: Path, seeds: list[int], chain: list[str], pretrain_steps: int) -> dict[str, dict[int, float]]:
    """metric -> steps after pretraining -> mean over seeds, for a run (or a chain of runs sharing steps)."""
    series: dict[str, dict[int, list[float]]] = {"utilization": {}, "entropy": {}}
    for seed in seeds:
        for run in chain:
            for record in _metrics(out / "runs" / f"seed{seed}" / run):
                for key in series:
                    if key in record:
                        step = int(record["global_step"]) - pretrain_steps
                        series[key].setdefault(step, []).append(float(record[key]))
    return {
        key: {s: statistics.fmean(v) for s, v in sorted(points.items())} for key, points in series.items()
    }


def plot_curves(out: Path, experiment: Any, methods: dict[str, str], ablation: dict[str, str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pretrain = int(experiment.run.get("pretrain", {}).get("steps", 1000))
    chains = {run: [run] for run in {*methods.values(), *ablation.values()}}
    chains["cola-adaptive"] = ["adaptive-warmup", "cola-adaptive"]
    figure, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True)
    panels = (("warm-up ablation", {**ablation, "adaptive warm-up": "cola-adaptive"}), ("methods", methods))
    for column, (title, rows) in enumerate(panels):
        for label, run in rows.items():
            series = curves(out, experiment.seeds, chains[run], pretrain)
            for row, key in enumerate(("utilization", "entropy")):
                points = series[key]
                axes[row][column].plot(list(points), list(points.values()), label=label, linewidth=1.4)
        axes[0][column].set_title(f"{title} (mean of {len(experiment.seeds)} seeds)")
        axes[0][column].axhline(0.2, color="grey", linestyle=":", linewidth=1)
        axes[1][column].axhline(1.0, color="grey", linestyle=":", linewidth=1)
        axes[1][column].set_xlabel("training step after pretraining")
        axes[0][column].legend(fontsize=8)
    axes[0][0].set_ylabel("code utilization (training batches)")
    axes[1][0].set_ylabel("code entropy (nats)")
    figure.suptitle("Codebook health during training (dotted: the paper's collapse thresholds)")
    figure.tight_layout()
    path = out / "utilization.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _table(rows: dict[str, dict[str, Any]], columns: tuple[tuple[str, str], ...], first: str) -> list[str]:
    lines = [
        f"| {first} | " + " | ".join(title for _, title in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for label, stats in rows.items():
        lines.append(f"| {label} | " + " | ".join(cell(stats[key]) for key, _ in columns) + " |")
    return lines


def write_summary(experiment: Any, out: Path, methods: dict[str, str], runs: list[str]) -> list[Path]:
    """results.md, results.json and utilization.png in ``out``."""
    from reproduction.plan import fraction_name, warmup_run_name, warmup_steps

    evaluations = read_evaluations(out, experiment.seeds, runs)
    keys = {key for key, _ in METHOD_COLUMNS} | {key for key, _ in ABLATION_COLUMNS}
    stats = {
        run: {key: aggregate(list(per_seed(found, key).values())) for key in keys}
        for run, found in evaluations.items()
    }
    ablation = {
        f"warm-up {fraction_name(f).replace('of', '/')} ({warmup_steps(experiment, f)} steps)": (
            warmup_run_name(f)
        )
        for f in sorted(set(experiment.warmup_fractions))
    }
    adaptive_used = []
    for seed in experiment.seeds:
        done = out / "runs" / f"seed{seed}" / "adaptive-warmup" / "DONE"
        if done.exists():
            adaptive_used.append(json.loads(done.read_text())["stage_steps"]["warmup"])
    adaptive_label = "adaptive warm-up (" + "/".join(str(s) for s in adaptive_used) + " steps by seed)"
    ablation_rows = {label: stats[run] for label, run in ablation.items() if run in stats}
    if "cola-adaptive" in stats:
        ablation_rows[adaptive_label] = stats["cola-adaptive"]
    warmup_end = {
        label: aggregate([warmup_end_utilization(out / "runs" / f"seed{s}" / run) for s in experiment.seeds])
        for label, run in ablation.items()
    }
    checked = findings(evaluations, methods)
    references = _read(out / "shared" / "planning_reference.json")
    machine = _read(out / "experiment.json").get("machine", {})
    estimate = _read(out / "estimate.json")

    lines = [f"# CoLA reproduction at small scale ({experiment.size})", ""]
    lines.append(
        f"Written {time.strftime('%Y-%m-%d %H:%M')} on {machine.get('gpu') or machine.get('processor')} "
        f"({machine.get('cpu_count')} CPU cores, torch {machine.get('torch')}). Seeds: "
        f"{experiment.seeds}. Budget after pretraining: {experiment.budget} steps for every method; "
        "the same batch and learning rates for all (see config.json of each run)."
    )
    lines.append("")
    lines.append(
        "Cells are mean +- sample std over seeds of held-out-episode scores. PSNR/SSIM: world-model "
        "rollouts from one real frame driven by the IDM's latent actions of the true clip. delta-PSNR: "
        "that PSNR minus the PSNR with random codes. adapter drop: PSNR with the IDM's codes minus "
        "PSNR with the action adapter fed the real actions (smaller is more robust). probe R^2: a "
        "linear map from latent actions to real actions."
    )
    method_rows = {label: stats[run] for label, run in methods.items() if run in stats}
    lines += ["", "## Methods", "", *_table(method_rows, METHOD_COLUMNS, "method")]
    lines += ["", "## Warm-up ablation", ""]
    lines += _table(ablation_rows, ABLATION_COLUMNS, "warm-up (share of budget)")
    lines.append("")
    lines.append(
        "Training-time utilization at the end of the warm-up: "
        + ", ".join(f"{label}: {cell(v)}" for label, v in warmup_end.items() if v["mean"] is not None)
        + "."
    )
    lines += [
        "",
        "## The paper's claims at this scale",
        "",
        "Computed from the numbers above, paired by seed (each method of a seed starts from the same "
        "pretrained world model). 'holds' means CoLA is ahead in every seed.",
        "",
        "| claim | compared | measure | mean difference (CoLA better if > 0) | paper | paper claim holds? |",
        "|---|---|---|---|---|---|",
    ]
    collapse = checked[0]
    lines.append(
        f"| {collapse['claim']} | {list(methods)[1]} vs {list(methods)[2]} | collapse signs on held-out "
        f"clips: {collapse['joint_collapsed_seeds']}/{collapse['seeds']} seeds without warm-up, "
        f"{collapse['cola_collapsed_seeds']}/{collapse['seeds']} with | utilization "
        f"{_number(collapse['utilization']['mean_difference'])} | collapse without warm-up | "
        f"{collapse['verdict']} |"
    )
    for entry in checked[1:]:
        lines.append(
            f"| {entry['claim']} | {entry['cola']} vs {entry['baseline']} | {entry['metric']} | "
            f"{_number(entry['mean_difference'])} | {entry['paper']} | {entry['verdict']} |"
        )
    if references:
        lines += ["", "## Planning references (same start/goal pairs)", ""]
        names = {"oracle": "oracle (true simulator, true block pose as cost)", "random": "random policy"}
        for name, label in names.items():
            entry = references[name]
            lines.append(
                f"- {label}: success {entry['success']:.2f} (strict {entry['success_strict']:.2f}) over "
                f"{entry['num_pairs']} pairs"
            )
        errors = references.get("readout_held_out_errors") or {}
        if errors:
            lines.append(
                f"- block-pose readout of the planning cost, held-out error: {errors['position_px']:.1f} px, "
                f"{errors['angle_rad']:.3f} rad"
            )
    unavailable = sorted(
        {
            f"{key}: {reason}"
            for found in evaluations.values()
            for r in found.values()
            for key, reason in r["unavailable"].items()
        }
    )
    if unavailable:
        lines += ["", "## Unavailable metrics (never estimated)", ""]
        lines += [f"- {line}" for line in sorted({u.split(": ", 1)[1] for u in unavailable})]
        lines.append("- metrics: " + ", ".join(sorted({u.split(": ", 1)[0] for u in unavailable})))
    if estimate:
        lines += [
            "",
            f"Estimated at the start of the last call: {estimate['total_seconds'] / 60:.1f} min left; "
            "measured s/step: " + ", ".join(f"{k} {v:.3f}" for k, v in estimate["per_step_seconds"].items()),
        ]
    lines += ["", "![codebook health during training](utilization.png)", ""]
    plot = plot_curves(out, experiment, methods, ablation)
    markdown = out / "results.md"
    markdown.write_text("\n".join(lines) + "\n")
    raw = out / "results.json"
    raw.write_text(
        json.dumps(
            {
                "size": experiment.size,
                "seeds": experiment.seeds,
                "budget": experiment.budget,
                "methods": methods,
                "ablation": ablation,
                "adaptive_warmup_steps": adaptive_used,
                "stats": stats,
                "findings": checked,
                "warmup_end_utilization": warmup_end,
                "planning_reference": references,
                "machine": machine,
            },
            indent=2,
            default=str,
        )
    )
    return [markdown, raw, plot]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}
