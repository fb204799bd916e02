"""cola_lam: a latent action model (IDM + VQ) that names the change between consecutive video frames."""

from .config import LAMConfig
from .decoder import LAMDecoder, reconstruction_loss
from .idm import InverseDynamicsModel
from .kernels import nearest_code
from .model import LatentActionModel
from .quantizer import VectorQuantizer, VQOutput
from .stats import CodebookStats, codebook_stats, collapse_warnings

__all__ = [
    "CodebookStats",
    "InverseDynamicsModel",
    "LAMConfig",
    "LAMDecoder",
    "LatentActionModel",
    "VQOutput",
    "VectorQuantizer",
    "codebook_stats",
    "collapse_warnings",
    "nearest_code",
    "reconstruction_loss",
]
