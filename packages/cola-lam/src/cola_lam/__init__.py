"""cola_lam: a latent action model (IDM + VQ) that names the change between consecutive video frames."""

from importlib.metadata import version as _version

__version__ = _version("cola-lam")

from .config import LAMConfig
from .decoder import LAMDecoder, reconstruction_loss
from .fsq import FiniteScalarQuantizer
from .idm import InverseDynamicsModel
from .keypoint_idm import KeypointIDM
from .model import LatentActionModel
from .quantizer import VectorQuantizer, VQOutput
from .stats import (
    CodebookGeometry,
    CodebookStats,
    code_geometry,
    codebook_stats,
    collapse_warnings,
)

__all__ = [
    "CodebookGeometry",
    "CodebookStats",
    "FiniteScalarQuantizer",
    "InverseDynamicsModel",
    "KeypointIDM",
    "LAMConfig",
    "LAMDecoder",
    "LatentActionModel",
    "VQOutput",
    "VectorQuantizer",
    "code_geometry",
    "codebook_stats",
    "collapse_warnings",
    "reconstruction_loss",
]
