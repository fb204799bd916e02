"""Visual planning on PushT: MPC (CEM, MPPI) with a world model, the true simulator or a random policy."""

from cola_eval.planning.config import PlanningConfig
from cola_eval.planning.costs import BlockPoseCost, Goal, PixelMSECost, StatePoseCost
from cola_eval.planning.evaluate import evaluate_planning
from cola_eval.planning.models import Observation, Prediction, SimulatorModel, WorldModel, clone_env
from cola_eval.planning.mpc import MPCPlanner, cem, mppi
from cola_eval.planning.protocol import PlanningPair, is_strict_success, is_success, make_pairs
from cola_eval.planning.readout import (
    ReadoutConfig,
    StateReadout,
    labelled_frames,
    readout_errors,
    train_readout,
)

__all__ = [
    "BlockPoseCost",
    "Goal",
    "MPCPlanner",
    "Observation",
    "PixelMSECost",
    "PlanningConfig",
    "PlanningPair",
    "Prediction",
    "ReadoutConfig",
    "SimulatorModel",
    "StatePoseCost",
    "StateReadout",
    "WorldModel",
    "cem",
    "clone_env",
    "evaluate_planning",
    "is_strict_success",
    "is_success",
    "labelled_frames",
    "make_pairs",
    "mppi",
    "readout_errors",
    "train_readout",
]
