"""cola_lam: a latent action model (IDM + VQ) that names the change between consecutive video frames."""

from importlib.metadata import version as _version

__version__ = _version("cola-lam")

from .config import LAMConfig
from .decoder import LAMDecoder, reconstruction_loss
from .idm import InverseDynamicsModel
from .kernels import nearest_code
from .model import LatentActionModel
from .quantizer import VectorQuantizer, VQOutput
from .stats import (
    MIN_CODE_SPREAD,
    MIN_LATENT_SPREAD,
    CodebookGeometry,
    CodebookStats,
    code_geometry,
    codebook_stats,
    collapse_warnings,
)

__all__ = [
    "MIN_CODE_SPREAD",
    "MIN_LATENT_SPREAD",
    "CodebookGeometry",
    "CodebookStats",
    "InverseDynamicsModel",
    "LAMConfig",
    "LAMDecoder",
    "LatentActionModel",
    "VQOutput",
    "VectorQuantizer",
    "code_geometry",
    "codebook_stats",
    "collapse_warnings",
    "nearest_code",
    "reconstruction_loss",
]
