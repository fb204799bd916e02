"""cola_wm: an action-conditioned video diffusion transformer trained with rectified flow."""

from importlib.metadata import version as _version

__version__ = _version("cola-wm")

from cola_wm.config import DiTConfig
from cola_wm.dit import ActionConditionedDiT
from cola_wm.flow import flow_matching_loss, predict_velocity, sample, shift_time

__all__ = [
    "ActionConditionedDiT",
    "DiTConfig",
    "flow_matching_loss",
    "predict_velocity",
    "sample",
    "shift_time",
]
