"""How large a CEM search the PushT protocol needs when each action lasts one frame-skip transition.

The true simulator plans (block-pose cost on its state) on the held-out start/goal pairs a reproduction
plans on, for each search size given; the random policy runs beside them. It separates the search's limit
from the world model's: a world model + readout cannot beat the simulator under the same search. A world
model's MPC step costs about samples x iterations x horizon x Euler steps DiT evaluations, so the
reproduction's measured step time scales from its own search to each row's.

    uv run python benchmarks/planning_search_study.py --reproduction OUT \
        --search h5s32i2=5,32,2 h5s128i3=5,128,3 [--execute 2] [--out FILE.json]

OUT is a reproduction's results folder (benchmarks/reproduce.py): its data, its clips' frame skip, its
planning pairs (count and seed) and its planner settings, with each row's horizon, samples and iterations.

Prints one row per search: success, strict success, mean final block error, oracle s per MPC step, and the
relative cost of a world-model MPC step (DiT evaluations per MPC step against the first row). With
``--readout``, each search also plans with the true simulator scored by the reproduction's learned block-pose
readout (OUT/shared/readout, the world models' planning cost) on the simulator's rendered frames: a perfect
model with the world models' cost, which separates the readout's limit from the world model's.
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from cola_eval.planning import PlanningConfig, evaluate_planning, make_pairs
from cola_eval.reproduction.shared import load_readout
from cola_train.data import ClipDataset, load_episodes


def parse_search(text: str) -> tuple[str, tuple[int, int, int]]:
    name, _, values = text.partition("=")
    parts = values.split(",")
    if not name or len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"a search is NAME=HORIZON,SAMPLES,ITERATIONS, got {text!r}")
    horizon, samples, iterations = (int(p) for p in parts)
    return name, (horizon, samples, iterations)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reproduction", type=Path, required=True, help="a reproduction's results folder")
    parser.add_argument("--execute", type=int, help="actions executed before replanning (default: OUT's)")
    parser.add_argument("--search", type=parse_search, nargs="+", required=True)
    parser.add_argument(
        "--readout",
        action="store_true",
        help="also plan each search with the true simulator and OUT's learned block-pose readout as the cost",
    )
    parser.add_argument("--out", type=Path, help="write every row and its per-pair records here")
    args = parser.parse_args()

    experiment = json.loads((args.reproduction / "experiment.json").read_text())["config"]
    data, options = experiment["run"]["data"], experiment["eval"]
    episodes = load_episodes(args.reproduction / "data" / "pusht")
    held_out = ClipDataset(
        episodes, data["clip_length"], frame_skip=data["frame_skip"], split=options["split"]
    ).episodes
    base = PlanningConfig(**{**options["planning_config"], "action_repeat": data["frame_skip"]})
    if args.execute:
        base = replace(base, execute_steps=args.execute)
    pairs = make_pairs(held_out, options["planning_pairs"], base.goal_offset, options["seed"])
    seed = options["seed"]
    readout = load_readout(args.reproduction / "shared" / "readout") if args.readout else None
    rows = {}
    random = evaluate_planning(held_out, "random", config=base, pairs=pairs, seed=seed)
    rows["random"] = {"success": random["success"], "success_strict": random["success_strict"]}
    first_cost = None
    for name, (horizon, samples, iterations) in args.search:
        config = replace(base, horizon=horizon, samples=samples, iterations=iterations)
        started = time.perf_counter()
        result = evaluate_planning(held_out, "oracle", "state_pose", config=config, pairs=pairs, seed=seed)
        evaluations = samples * iterations * horizon * base.euler_steps
        first_cost = first_cost or evaluations
        rows[name] = {
            "horizon": horizon,
            "samples": samples,
            "iterations": iterations,
            "success": result["success"],
            "success_strict": result["success_strict"],
            "mean_final_block_error_px": result["mean_final_block_error_px"],
            "oracle_s_per_mpc_step": result["seconds_per_mpc_step"],
            "world_model_cost_vs_first": evaluations / first_cost,
            "wall_s": time.perf_counter() - started,
            "pairs": result["pairs"],
        }
        if readout is not None:
            started = time.perf_counter()
            scored = evaluate_planning(
                held_out, "oracle", "block_pose", readout=readout, config=config, pairs=pairs, seed=seed
            )
            rows[f"{name}+readout"] = {
                **rows[name],
                "cost": "block_pose (learned readout)",
                "success": scored["success"],
                "success_strict": scored["success_strict"],
                "mean_final_block_error_px": scored["mean_final_block_error_px"],
                "oracle_s_per_mpc_step": scored["seconds_per_mpc_step"],
                "wall_s": time.perf_counter() - started,
                "pairs": scored["pairs"],
            }
    print(f"{len(pairs)} pairs, frame skip {base.action_repeat}, execute {base.execute_steps}")
    print("| search | success | strict | final block error (px) | oracle s/MPC step | world-model cost |")
    print("|---|---|---|---|---|---|")
    print(f"| random policy | {random['success']:.2f} | {random['success_strict']:.2f} | - | - | - |")
    for name, row in rows.items():
        if name == "random":
            continue
        cost = ", learned readout" if name.endswith("+readout") else ""
        print(
            f"| {name.removesuffix('+readout')} (h{row['horizon']}, {row['samples']} samples, "
            f"{row['iterations']} it{cost}) | "
            f"{row['success']:.2f} | {row['success_strict']:.2f} | {row['mean_final_block_error_px']:.1f} | "
            f"{row['oracle_s_per_mpc_step']:.3f} | x{row['world_model_cost_vs_first']:.1f} |"
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
