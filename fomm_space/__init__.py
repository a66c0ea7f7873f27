"""fomm-space: the First Order Motion Model (Siarohin et al., NeurIPS 2019) as a library.

>>> import fomm_space
>>> model = fomm_space.load_model("vox")               # downloads the published checkpoint
>>> frames = model.animate(source, driving)            # (N, 256, 256, 3) float32 in [0, 1]
"""

from .config import ModelConfig
from .errors import CheckpointError, ConfigError, FommError, InputError, ModelNotFoundError
from .model import AnimationBatch, FommModel, PreparedSource, load_model
from .options import DEFAULTS, AnimationOptions
from .registry import MODELS, ModelSpec

__all__ = [
    "AnimationBatch", "AnimationOptions", "CheckpointError", "ConfigError", "DEFAULTS", "FommError",
    "FommModel", "InputError", "MODELS", "ModelConfig", "ModelNotFoundError", "ModelSpec",
    "PreparedSource", "load_model",
]
__version__ = "0.1.0"
