"""What every evaluated run of the reproduction shares (clips, metric networks, planning readout and pairs),
and one run's evaluation.json.

Every run is scored by :func:`cola_eval.evaluation.evaluate_run` on the same held-out clips with the
experiment's ``[eval]`` options (the same settings as `cola-eval report`'s flags), the same planning pairs
and the same block-pose readout, trained once and kept on disk.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cola_eval.evaluation import EvaluationData, MetricNetworks, PlanningSetup, RunEvaluation, device_of

PLANNING_FILE = "planning.json"  # one run's planning result, beside its evaluation.json


def load_readout(folder: Path) -> Any:
    """The block-pose readout a reproduction trained for its planning cost, from ``folder``
    (OUT/shared/readout: readout.json and model.safetensors), in eval mode."""
    from safetensors.torch import load_model

    from cola_eval.planning import ReadoutConfig, StateReadout

    record = folder / "readout.json"
    if not record.exists():
        raise ValueError(
            f"{folder} holds no block-pose readout: plan in the reproduction first (--planning-runs)"
        )
    readout = StateReadout(ReadoutConfig(**json.loads(record.read_text())["config"]))
    load_model(readout, str(folder / "model.safetensors"))
    return readout.eval()


@dataclass
class SharedEvaluation:
    """The experiment's evaluation data and where its shared files go (OUT/shared)."""

    experiment: Any
    data: EvaluationData
    out: Path
    say: Callable[[str], None] = print

    @classmethod
    def build(
        cls, experiment: Any, episodes: list[Any], out: Path, say: Callable[[str], None]
    ) -> SharedEvaluation:
        from cola_eval.evaluation import clip_sets

        options = experiment.eval
        data = experiment.run.get("data", {})
        frames = options.frames or int(data.get("clip_length", 8))
        held_out, train = clip_sets(
            episodes, frames, int(data.get("frame_size", 64)), int(data.get("frame_skip", 1)), options.split
        )
        networks = MetricNetworks(options, device_of(options.device))
        return cls(experiment, EvaluationData(held_out, train, frames, networks), out / "shared", say)

    def planning(self) -> PlanningSetup:
        """The planning pairs and readout, built on first use: only the planning jobs need them, and the
        shared job (which every planning job waits on) trains the readout once before any of them."""
        if self.data.planning is None:
            self.data.planning = self._planning()
        return self.data.planning

    def _planning(self) -> PlanningSetup:
        """The planning pairs and the block-pose readout of the planning cost: trained once on the train
        episodes, kept on disk."""
        from safetensors.torch import save_model

        from cola_eval.evaluation import planning_setup
        from cola_eval.planning import labelled_frames, readout_errors

        options = self.experiment.eval
        folder = self.out / "readout"
        weights, record = folder / "model.safetensors", folder / "readout.json"
        saved = json.loads(record.read_text()) if record.exists() else {}
        # Records from before the steps were kept were trained with this call's steps.
        if weights.exists() and saved and saved.get("steps", options.readout_steps) == options.readout_steps:
            return planning_setup(self.data.held_out, self.data.train, options, load_readout(folder))
        self.say(f"training the block-pose readout of the planning cost ({options.readout_steps} steps)")
        setup = planning_setup(self.data.held_out, self.data.train, options)
        errors = readout_errors(setup.readout, *labelled_frames(self.data.held_out.episodes))
        folder.mkdir(parents=True, exist_ok=True)
        save_model(setup.readout, str(weights))
        summary = {"position_px": errors.position_px, "angle_rad": errors.angle_rad, "frames": errors.frames}
        record.write_text(
            json.dumps(
                {
                    "config": dataclasses.asdict(setup.readout.config),
                    "steps": options.readout_steps,
                    "held_out_errors": summary,
                },
                indent=2,
            )
        )
        setup.readout.eval()
        return setup

    def readout_errors(self) -> dict[str, float]:
        return json.loads((self.out / "readout" / "readout.json").read_text())["held_out_errors"]

    def reference_planning(self) -> dict[str, Any]:
        """The true simulator (oracle) and a random policy on the same pairs: the scale's two ends.

        The oracle scores its rollouts with the true block pose (``state_pose``): a perfect model with a
        perfect cost, and no frames to render, which keeps the reference affordable on a CPU. Both plan as
        many pairs at once as this process has torch threads (its share of the cores), each in a process
        of its own: the `gpu` size's search takes the oracle ~16 min on one core.
        """
        setup = self.planning()
        path = self.out / "planning_reference.json"
        if planned_under_current_settings(path, self.experiment):
            return json.loads(path.read_text())
        references: dict[str, Any] = {}
        seed = self.experiment.eval.seed
        for name in ("oracle", "random"):
            self.say(f"planning reference: {name} on {len(setup.pairs)} start/goal pairs")
            started = time.perf_counter()
            cost = "state_pose" if name == "oracle" else "block_pose"
            result = setup.plan(self.data.held_out.episodes, name, seed, cost, torch.get_num_threads())
            references[name] = planning_record(result) | {
                "cost": cost,
                "seconds": time.perf_counter() - started,
            }
        references["readout_held_out_errors"] = self.readout_errors()
        references["config"] = dataclasses.asdict(setup.config)
        references["settings"] = planning_settings(self.experiment)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(references, indent=2))
        return references

    def evaluate(self, run_dir: Path) -> dict[str, Any]:
        """evaluation.json of one finished run (planning is a job of its own: :meth:`plan`)."""
        from cola_train import load_trained

        from cola_eval.evaluation import evaluate_run

        options = dataclasses.replace(self.experiment.eval, planning=False)
        return evaluation_record(evaluate_run(load_trained(run_dir), self.data, options), options)

    def plan(self, run_dir: Path) -> dict[str, Any]:
        """planning.json of one finished run: its world model and action adapter on the shared pairs."""
        from cola_train import load_trained

        from cola_eval.evaluation import plan_run, planning_metrics

        options = dataclasses.replace(self.experiment.eval, planning=True)
        self.planning()
        result = plan_run(load_trained(run_dir), self.data, options)
        return {
            "metrics": {key: m["value"] for key, m in planning_metrics("world_model", result).items()},
            "planning": planning_record(result),
            "settings": planning_settings(self.experiment),
        }


# The [eval] options only planning reads: a later call may change them (the driver's folder check ignores
# them), since every planning result records them with its settings and is redone when they differ.
PLANNING_OPTIONS = ("planning", "planning_pairs", "planning_config", "planning_cost", "readout_steps")


def planning_settings(experiment: Any) -> dict[str, Any]:
    """What a planning result depends on besides its run (the pairs follow from these and the folder's
    data): a result planned under other settings is redone, so a later call may change them."""
    options = experiment.eval
    chosen = {name: getattr(options, name) for name in PLANNING_OPTIONS if name != "planning"}
    return {
        **chosen,
        "planning_config": dict(options.planning_config),
        "seed": options.seed,
        "frame_skip": int(experiment.run.get("data", {}).get("frame_skip", 1)),
    }


def planned_under_current_settings(path: Path, experiment: Any) -> bool:
    """Whether ``path`` (planning.json or planning_reference.json) exists and was planned as the experiment
    plans now."""
    return path.exists() and json.loads(path.read_text()).get("settings") == planning_settings(experiment)


PLANNING_KEEP = (
    "success",
    "success_strict",
    "num_pairs",
    "seconds_per_mpc_step",
    "mpc_steps",
    "mean_final_block_error_px",
    "mean_final_angle_error_rad",
    "pairs",
)


def planning_record(result: dict[str, Any]) -> dict[str, Any]:
    return {key: result[key] for key in PLANNING_KEEP}


def evaluation_record(evaluation: RunEvaluation, options: Any) -> dict[str, Any]:
    """A run's evaluation.json: each metric's value (None where it could not be computed) and, apart, why
    the missing ones are missing."""
    return {
        "run_dir": evaluation.run_dir,
        "metrics": evaluation.values(),
        "unavailable": evaluation.unavailable(),
        "collapse_warnings": evaluation.collapse_warnings,
        "counts": evaluation.counts,
        "planning": planning_record(evaluation.planning) if evaluation.planning else None,
        "settings": {"frames": evaluation.frames, **dataclasses.asdict(options)},
    }
