"""The gradient-path ablations' part of the summary: which direction of CoLA's mutual tutoring carries its
gain, read off CoLA against each ablation with the summary's paired-by-seed verdict."""

from __future__ import annotations

from typing import Any

from cola_eval.reproduction.summary import (
    CLAIMS,
    FLOORS,
    METHOD_COLUMNS,
    difference_cell,
    per_seed,
    table_lines,
    tie_threshold,
    verdict,
)

# The measures judged: those of the claims (the paper's and the controllability scores), plus codebook
# utilization (what the LAM's gradient shapes); each has a tie threshold.
MEASURES = (*((key, higher) for _, key, higher, _ in CLAIMS), ("codebook/utilization", True))
# The ablation that removes each direction. Stopping the gradient cuts exactly the world model's tutoring
# of the LAM (freezing the LAM also stops its own VQ losses: shown beside it as a check).
WORLD_MODEL_TO_LAM = "gradient into the LAM stopped"
LAM_TO_WORLD_MODEL = "world model frozen in joint"


def compare(
    evaluations: dict[str, dict[int, dict[str, Any]]], rows: dict[str, str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """ablation label -> measure -> the verdict of CoLA (``rows``' first run) against that ablation."""
    cola_label, *ablations = rows
    cola = evaluations.get(rows[cola_label], {})
    compared: dict[str, dict[str, dict[str, Any]]] = {}
    for label in ablations:
        ablation = evaluations.get(rows[label], {})
        compared[label] = {}
        for key, higher in MEASURES:
            threshold = tie_threshold(key, [*cola.values(), *ablation.values()])
            entry = verdict(per_seed(cola, key), per_seed(ablation, key), higher, threshold, FLOORS.get(key))
            compared[label][key] = {**entry, "metric": key, "higher_is_better": higher}
    return compared


def carrier(world_model_to_lam: str, lam_to_world_model: str) -> str:
    """The direction carrying CoLA's gain on one measure, from CoLA's verdicts against the ablation that
    cuts each direction: a direction carries the gain when cutting it leaves CoLA ahead in every seed."""
    if world_model_to_lam.startswith("untestable") or lam_to_world_model.startswith("untestable"):
        return "untestable"
    first, second = world_model_to_lam.startswith("holds"), lam_to_world_model.startswith("holds")
    if first and second:
        return "both directions"
    if first:
        return "world model -> LAM"
    if second:
        return "LAM -> world model"
    if world_model_to_lam.startswith("does not hold") and lam_to_world_model.startswith("does not hold"):
        return "neither (both ablations ahead of CoLA)"
    return "inconclusive"


def carriers(compared: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    """measure -> the direction carrying the gain on it (see :func:`carrier`)."""
    return {
        key: carrier(
            compared[WORLD_MODEL_TO_LAM][key]["verdict"], compared[LAM_TO_WORLD_MODEL][key]["verdict"]
        )
        for key, _ in MEASURES
    }


def section(
    evaluations: dict[str, dict[int, dict[str, Any]]],
    stats: dict[str, dict[str, Any]],
    rows: dict[str, str],
    seeds: int,
) -> tuple[list[str], dict[str, Any]]:
    """results.md's "Gradient-path ablations" lines and results.json's "gradient_ablations" entry."""
    compared = compare(evaluations, rows)
    directions = carriers(compared)
    cola_label = next(iter(rows))
    table_rows = {label: stats[run] for label, run in rows.items() if run in stats}
    lines = ["", "## Gradient-path ablations", "", *table_lines(table_rows, METHOD_COLUMNS, "joint stage")]
    lines += [
        "",
        f"Reading rule: every row starts from the same seed's pretrained world model and CoLA's warm-up and "
        f"differs from {cola_label} only in its joint stage. Each ablation is compared with CoLA by the "
        "claims' rule (paired by seed, oriented so that > 0 means CoLA is better, ties within the same "
        "thresholds; 'holds': CoLA ahead in every seed). A direction of the tutoring carries the gain on a "
        "measure when cutting it leaves CoLA ahead: the world model -> LAM direction when CoLA beats "
        f"'{WORLD_MODEL_TO_LAM}' (freezing the LAM, which also stops the LAM's own losses, is shown as a "
        f"check), the LAM -> world model direction when CoLA beats '{LAM_TO_WORLD_MODEL}'; neither when "
        "both ablations are ahead of CoLA; otherwise inconclusive. With "
        f"{seeds} seed(s) nothing beyond counting seeds is possible. At this scale: "
        + "; ".join(f"{key}: {direction}" for key, direction in directions.items())
        + ".",
        "",
        "| measure | " + " | ".join(f"CoLA vs {label}" for label in compared) + " | carries the gain |",
        "|---" * (len(compared) + 2) + "|",
    ]
    for key, _ in MEASURES:
        cells = [f"{difference_cell(c[key])}: {c[key]['verdict']}" for c in compared.values()]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {directions[key]} |")
    record = {
        "rows": {label: {"run": run, "stats": stats.get(run)} for label, run in rows.items()},
        "compared_with_cola": compared,
        "carries_the_gain": directions,
    }
    return lines, record
