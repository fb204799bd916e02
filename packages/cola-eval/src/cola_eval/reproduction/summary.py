"""The reproduction's results: tables (mean +- std over seeds), the paper's claims checked against the
numbers, and codebook-utilization curves, all computed from the runs' evaluation.json and metrics.jsonl files.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

METHOD_COLUMNS = (
    ("inferred/psnr", "PSNR (dB)"),
    ("inferred/ssim", "SSIM"),
    ("inferred/lpips", "LPIPS"),
    ("inferred/fvd", "FVD"),
    ("delta_psnr", "delta-PSNR (dB)"),
    ("moving_delta_psnr", "moving-pixel delta-PSNR (dB)"),
    ("inferred/agent_error", "agent error, inferred (px)"),
    ("shuffled/agent_error", "agent error, shuffled (px)"),
    ("inferred/action_recovery", "action recovery (%)"),
    ("codebook/utilization", "code utilization"),
    ("codebook/entropy", "code entropy (nats)"),
    ("probe/embedding/r2", "probe R^2"),
    ("probe/agent_displacement/embedding/r2", "probe R^2, agent displacement"),
    ("adapter_degradation/psnr_db", "adapter drop (dB PSNR)"),
    ("adapter_degradation/fvd", "adapter drop (FVD)"),
    ("planning/world_model/success", "planning success"),
)
ABLATION_COLUMNS = (
    ("codebook/utilization", "code utilization"),
    ("codebook/entropy", "code entropy (nats)"),
    ("codebook/max_share", "top code share"),
    ("inferred/psnr", "PSNR (dB)"),
    ("delta_psnr", "delta-PSNR (dB)"),
    ("probe/embedding/r2", "probe R^2"),
)
# (claim, metric, higher is better, the paper's figures)
# Where a plan leaves the block (mean over the pairs): graded where success sits at zero for every method.
FINAL_BLOCK_ERROR = "planning/world_model/final_block_error_px"
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
    (
        "co-evolution's world model follows its actions better (moving-pixel delta-PSNR)",
        "moving_delta_psnr",
        True,
        "not measured in the paper",
    ),
    (
        "co-evolution's world model follows its actions better (agent-position error, inferred codes)",
        "inferred/agent_error",
        False,
        "not measured in the paper",
    ),
    (
        "co-evolution's rollouts keep the actions that drive them (action recovery)",
        "inferred/action_recovery",
        True,
        "not measured in the paper",
    ),
    ("co-evolution plans better than two-stage", "planning/world_model/success", True, "VP2 13.12% vs 6.94%"),
    (
        "co-evolution's plans end nearer the goal (final block-pose error)",
        FINAL_BLOCK_ERROR,
        False,
        "not measured in the paper",
    ),
)
# Per-seed differences no larger than these are ties: below what the metric resolves on a few dozen
# held-out clips (PSNR, SSIM, LPIPS, FVD) or a few hundred held-out transitions (utilization). Planning
# success moves in steps of one start/goal pair, and one pair flipping is noise, so its threshold is one
# pair's worth (set from the evaluation's pair count).
TIE_THRESHOLDS = {
    "inferred/psnr": 0.1,
    "inferred/ssim": 0.005,
    "inferred/lpips": 0.005,
    "inferred/fvd": 5.0,
    "adapter_degradation/psnr_db": 0.1,
    "codebook/utilization": 0.02,
    # The controllability scores: a moving-pixel PSNR moves by tenths of a dB between seeds of one run;
    # the agent read off a 64 px frame is located to about a pixel; action recovery counts a few hundred
    # tokens, so one point is a handful of tokens.
    "moving_delta_psnr": 0.1,
    "inferred/agent_error": 0.5,
    "inferred/action_recovery": 1.0,
    # The block's final pose error (arena px + 57 px/rad) averaged over the pairs: one pixel of a 64 px
    # frame is 8 arena px, below which the world model's frames cannot place the block.
    FINAL_BLOCK_ERROR: 8.0,
}
# Metrics with a floor both methods can sit at, where a comparison says nothing about the methods.
FLOORS = {"planning/world_model/success": 0.0}


def read_evaluations(
    out: Path, seeds: list[int], runs: list[str], experiment: Any = None
) -> dict[str, dict[int, dict[str, Any]]]:
    """run -> seed -> evaluation.json (only those that exist), with the run's planning.json merged in where
    it was planned under ``experiment``'s current planning settings."""
    from cola_eval.reproduction.shared import PLANNING_FILE, planned_under_current_settings

    found: dict[str, dict[int, dict[str, Any]]] = {}
    for run in runs:
        for seed in seeds:
            folder = out / "runs" / f"seed{seed}" / run
            if not (folder / "evaluation.json").exists():
                continue
            evaluation = json.loads((folder / "evaluation.json").read_text())
            planning = folder / PLANNING_FILE
            if experiment is not None and planned_under_current_settings(planning, experiment):
                planned = json.loads(planning.read_text())
                evaluation["metrics"].update(planned["metrics"])
                evaluation["metrics"][FINAL_BLOCK_ERROR] = planned["planning"]["mean_final_block_error_px"]
                evaluation["planning"] = planned["planning"]
                evaluation["counts"]["planning_pairs"] = planned["planning"]["num_pairs"]
            found.setdefault(run, {})[seed] = evaluation
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


def tie_threshold(metric: str, results: Sequence[dict[str, Any]] = ()) -> float:
    """The largest per-seed difference of ``metric`` that counts as a tie (see TIE_THRESHOLDS); planning
    success's is one pair of the fewest pairs any of ``results`` (evaluation.json contents) planned."""
    if metric.startswith("planning/") and metric not in TIE_THRESHOLDS:
        pairs = [r["counts"]["planning_pairs"] for r in results if r["counts"].get("planning_pairs")]
        return 1.0 / min(pairs) if pairs else 0.0
    if metric not in TIE_THRESHOLDS:
        raise ValueError(f"no tie threshold for {metric}; known: {sorted(TIE_THRESHOLDS)} and planning/*")
    return TIE_THRESHOLDS[metric]


def verdict(
    cola: dict[int, float | None],
    baseline: dict[int, float | None],
    higher: bool,
    threshold: float,
    floor: float | None = None,
) -> dict[str, Any]:
    """Paired by seed (both branch from one pretrained model): is CoLA ahead by more than ``threshold`` in
    every seed?

    Each seed's difference (oriented so that > 0 means CoLA is better) counts as ahead, tied (|d| <=
    ``threshold``) or behind. The claim holds when CoLA is ahead in every seed, does not hold when it is ahead
    in none and behind in some, and is inconclusive otherwise (all tied, or mixed). When both methods sit at
    the metric's ``floor`` in every seed, the comparison is untestable at this scale.
    """
    seeds = sorted(s for s in cola if cola[s] is not None and baseline.get(s) is not None)
    result: dict[str, Any] = {
        "seeds": len(seeds),
        "ahead": 0,
        "tied": 0,
        "behind": 0,
        "mean_difference": None,
        "std_difference": None,
        "differences": {},
        "threshold": threshold,
    }
    if not seeds:
        return {**result, "verdict": "untestable (metric unavailable)"}
    sign = 1.0 if higher else -1.0
    differences = {s: sign * (cola[s] - baseline[s]) for s in seeds}
    ahead = sum(d > threshold for d in differences.values())
    behind = sum(d < -threshold for d in differences.values())
    tied = len(seeds) - ahead - behind
    values = list(differences.values())
    result.update(
        ahead=ahead,
        tied=tied,
        behind=behind,
        differences=differences,
        mean_difference=statistics.fmean(values),
        std_difference=statistics.stdev(values) if len(values) > 1 else None,
    )
    n = len(seeds)
    only = "; one seed only" if n == 1 else ""
    if floor is not None and all(cola[s] == floor and baseline[s] == floor for s in seeds):
        text = f"untestable at this scale (both {floor:g} in {n}/{n} seeds)"
    elif ahead == n:
        text = f"holds ({ahead}/{n} seeds ahead{only})"
    elif ahead == 0 and behind > 0:
        text = f"does not hold (0/{n} ahead: {behind} behind, {tied} tied{only})"
    elif tied == n:
        text = f"inconclusive (tie: {n}/{n} seeds within {threshold:g}{only})"
    else:
        text = f"inconclusive (mixed: {ahead} ahead, {tied} tied, {behind} behind)"
    return {**result, "verdict": text}


def collapse_finding(joint: dict[int, dict[str, Any]], cola: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The paper's warm-up claim: a randomly initialised LAM trained jointly collapses; after warm-up it does
    not. Collapse signs are the paper's (utilization < 20%, one code > 50%, entropy < 1.0) on held-out
    clips."""
    joint_collapsed = sum(bool(r["collapse_warnings"]) for r in joint.values())
    cola_collapsed = sum(bool(r["collapse_warnings"]) for r in cola.values())
    key = "codebook/utilization"
    utilization = verdict(per_seed(cola, key), per_seed(joint, key), True, tie_threshold(key))
    if not joint or not cola:
        text = "untestable (runs missing)"
    else:
        if joint_collapsed * 2 > len(joint) and cola_collapsed * 2 <= len(cola):
            text = "holds"
        elif joint_collapsed * 2 > len(joint):
            text = "does not hold (both collapse)"
        elif utilization["verdict"].startswith("holds"):
            text = "partly: warm-up raises utilization, but joint training without it shows no collapse sign"
        else:
            text = "does not hold (no collapse without warm-up)"
        only = "; one seed only" if len(joint) == 1 else ""
        text += (
            f" [collapse in {joint_collapsed}/{len(joint)} seeds without warm-up, "
            f"{cola_collapsed}/{len(cola)} with{only}]"
        )
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
            threshold = tie_threshold(key, [*two_stage.values(), *variant.values()])
            entry = verdict(
                per_seed(variant, key), per_seed(two_stage, key), higher, threshold, FLOORS.get(key)
            )
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


def curves(out: Path, seeds: list[int], chain: list[str], bin_steps: int = 10) -> dict[str, dict[int, float]]:
    """metric -> steps after pretraining -> mean over seeds, for a run (or a chain of runs, each branched
    from the one before, whose step counts restart at 0). Steps are binned to ``bin_steps`` (the logging
    interval) so seeds whose chains log at shifted steps (adaptive warm-ups of different lengths) average
    together instead of alternating."""
    from cola_eval.reproduction.plan import finished_stage_steps

    series: dict[str, dict[int, list[float]]] = {"utilization": {}, "entropy": {}}
    for seed in seeds:
        offset = 0
        for run in chain:
            run_dir = out / "runs" / f"seed{seed}" / run
            for record in _metrics(run_dir):
                for key in series:
                    if key in record:
                        step = (offset + int(record["global_step"])) // bin_steps * bin_steps
                        series[key].setdefault(step, []).append(float(record[key]))
            offset += sum(finished_stage_steps(run_dir).values())
    return {
        key: {s: statistics.fmean(v) for s, v in sorted(points.items())} for key, points in series.items()
    }


def plot_curves(out: Path, experiment: Any, methods: dict[str, str], ablation: dict[str, str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chains = {run: [run] for run in {*methods.values(), *ablation.values()}}
    chains["cola-adaptive"] = ["adaptive-warmup", "cola-adaptive"]
    figure, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True)
    panels = (("warm-up ablation", {**ablation, "adaptive warm-up": "cola-adaptive"}), ("methods", methods))
    for column, (title, rows) in enumerate(panels):
        for label, run in rows.items():
            bins = max(1, int(experiment.run.get("train", {}).get("log_every", 10)))
            series = curves(out, experiment.seeds, chains[run], bins)
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


def table_lines(
    rows: dict[str, dict[str, Any]], columns: tuple[tuple[str, str], ...], first: str
) -> list[str]:
    lines = [
        f"| {first} | " + " | ".join(title for _, title in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for label, stats in rows.items():
        lines.append(f"| {label} | " + " | ".join(cell(stats[key]) for key, _ in columns) + " |")
    return lines


def write_summary(experiment: Any, out: Path, methods: dict[str, str], runs: list[str]) -> list[Path]:
    """results.md, results.json and utilization.png in ``out``."""
    from cola_eval.reproduction.plan import fraction_name, warmup_run_name, warmup_steps
    from cola_eval.reproduction.shared import planned_under_current_settings

    evaluations = read_evaluations(out, experiment.seeds, runs, experiment)
    keys = {key for key, _ in METHOD_COLUMNS} | {key for key, _ in ABLATION_COLUMNS}
    keys |= {key for key, _ in PLANNING_COLUMNS}
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
    reference_path = out / "shared" / "planning_reference.json"
    references = _read(reference_path) if planned_under_current_settings(reference_path, experiment) else {}
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
        "that PSNR minus the PSNR with random codes; moving-pixel delta-PSNR: the same over the pixels "
        "where the true future differs from the first frame. agent error: distance in frame px between "
        "the PushT agent read off the predicted frames and its true position, with the IDM's codes of "
        "the clip (inferred) and of another held-out clip (shuffled): inferred well below shuffled means "
        "the world model follows its actions. action recovery: % of latent-action tokens the IDM names "
        "the same on the predicted clip as on the true one. adapter drop: PSNR with the IDM's codes minus "
        "PSNR with the action adapter fed the real actions (smaller is more robust). probe R^2: a "
        "linear map from latent actions to real actions."
    )
    method_rows = {label: stats[run] for label, run in methods.items() if run in stats}
    lines += ["", "## Methods", "", *table_lines(method_rows, METHOD_COLUMNS, "method")]
    lines += ["", "## Warm-up ablation", ""]
    lines += table_lines(ablation_rows, ABLATION_COLUMNS, "warm-up (share of budget)")
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
        "pretrained world model). Per seed, the difference is oriented so that > 0 means CoLA is better; "
        "a difference within the tie threshold is a tie. 'holds': CoLA ahead beyond the threshold in every "
        "seed; 'does not hold': ahead in none and behind in some; 'inconclusive': all tied, or mixed. With "
        f"{len(experiment.seeds)} seed(s) no test of significance is possible beyond counting seeds.",
        "",
        "| claim | compared | measure | difference, mean +- std over seeds (> 0: CoLA better) | tie within | "
        "paper | paper claim holds? |",
        "|---|---|---|---|---|---|---|",
    ]
    collapse = checked[0]
    utilization = collapse["utilization"]
    lines.append(
        f"| {collapse['claim']} | {list(methods)[1]} vs {list(methods)[2]} | collapse signs on held-out "
        f"clips: {collapse['joint_collapsed_seeds']}/{collapse['seeds']} seeds without warm-up, "
        f"{collapse['cola_collapsed_seeds']}/{collapse['seeds']} with; utilization | "
        f"{difference_cell(utilization)} | {utilization['threshold']:g} | collapse without warm-up | "
        f"{collapse['verdict']} |"
    )
    for entry in checked[1:]:
        lines.append(
            f"| {entry['claim']} | {entry['cola']} vs {entry['baseline']} | {entry['metric']} | "
            f"{difference_cell(entry)} | {entry['threshold']:g} | {entry['paper']} | {entry['verdict']} |"
        )
    gradient: dict[str, Any] = {}
    if experiment.gradient_ablations:
        from cola_eval.reproduction.gradient_summary import section
        from cola_eval.reproduction.plan import gradient_ablation_rows

        rows = gradient_ablation_rows(experiment)
        extra, gradient = section(evaluations, stats, rows, len(experiment.seeds))
        lines += extra
    if references:
        labels: dict[str, str] = {}
        if experiment.gradient_ablations:
            from cola_eval.reproduction.plan import gradient_ablation_rows

            labels = {run: label for label, run in gradient_ablation_rows(experiment).items()}
        labels |= {run: label for label, run in methods.items()}  # CoLA's run keeps its method label
        lines += ["", *planning_section(references, stats, evaluations, labels)]
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
            f"Estimated at the start of the last call: {estimate['total_seconds'] / 60:.1f} min left on "
            f"{estimate.get('workers', 1)} worker(s) x {estimate.get('threads')} thread(s); "
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
                **({"gradient_ablations": gradient} if gradient else {}),
                "planning_reference": references,
                "machine": machine,
            },
            indent=2,
            default=str,
        )
    )
    return [markdown, raw, plot]


PLANNING_COLUMNS = (
    ("planning/world_model/success", "success"),
    ("planning/world_model/success_strict", "strict success"),
    ("planning/world_model/s_per_mpc_step", "s per MPC step"),
    (FINAL_BLOCK_ERROR, "final block error"),
)
REFERENCE_LABELS = {
    "oracle": "oracle (true simulator, true block pose as cost)",
    "random": "random policy",
}


def planning_section(
    references: dict[str, Any],
    stats: dict[str, dict[str, Any]],
    evaluations: dict[str, dict[int, dict[str, Any]]],
    labels: dict[str, str],
) -> list[str]:
    """The planning table: every planned run's world model (mean +- std over seeds) beside the oracle and
    the random policy on the same start/goal pairs, with the pair count and the MPC step time."""
    config = references.get("config") or {}
    lines = [
        "## Planning (same start/goal pairs for every row)",
        "",
        f"Each row plans {references['oracle']['num_pairs']} held-out start/goal pairs (goal "
        f"{config.get('goal_offset')} env steps after the start, rebuilt by replay) within a "
        f"{config.get('budget')}-env-step budget with {str(config.get('method', '')).upper()} (horizon "
        f"{config.get('horizon')}, {config.get('samples')} samples, {config.get('iterations')} iterations, "
        f"{config.get('execute_steps')} actions executed per replan, each held for "
        f"{config.get('action_repeat', 1)} env steps: one world-model transition); success is judged by the "
        "simulator. World-model rows: the run's world model driven through its action adapter, scored by "
        "the block-pose readout; cells are mean +- std over seeds.",
        "",
        "| planner | success | strict success | pairs per seed | pairs solved beyond random (mean) | "
        "s per MPC step | final block error (px + 57 px/rad) |",
        "|---|---|---|---|---|---|---|",
    ]
    random = references["random"]["success"]
    for name, label in REFERENCE_LABELS.items():
        entry = references[name]
        step = entry.get("seconds_per_mpc_step")
        lines.append(
            f"| {label} | {entry['success']:.3f} | {entry['success_strict']:.3f} | {entry['num_pairs']} | "
            f"{(entry['success'] - random) * entry['num_pairs']:+.1f} | "
            + (f"{step:.3f}" if step else "-")
            + f" | {entry['mean_final_block_error_px']:.1f} |"
        )
    for run, found in evaluations.items():
        planned = [r for r in found.values() if r.get("planning")]
        if not planned:
            continue
        cells = [cell(stats[run][key], 1 if key == FINAL_BLOCK_ERROR else 3) for key, _ in PLANNING_COLUMNS]
        pairs = sorted({r["planning"]["num_pairs"] for r in planned})
        beyond = statistics.fmean(
            (r["planning"]["success"] - random) * r["planning"]["num_pairs"] for r in planned
        )
        lines.append(
            f"| world model: {labels.get(run, run)} ({len(planned)} seeds) | {cells[0]} | {cells[1]} | "
            f"{'/'.join(map(str, pairs))} | {beyond:+.1f} | {cells[2]} | {cells[3]} |"
        )
    errors = references.get("readout_held_out_errors") or {}
    if errors:
        lines += [
            "",
            f"Block-pose readout of the planning cost, held-out error: {errors['position_px']:.1f} px, "
            f"{errors['angle_rad']:.3f} rad.",
        ]
    return lines


def difference_cell(entry: dict[str, Any]) -> str:
    mean, std = entry["mean_difference"], entry["std_difference"]
    if mean is None:
        return "-"
    return f"{mean:+.3f}" + ("" if std is None else f" +- {std:.3f}")


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}
