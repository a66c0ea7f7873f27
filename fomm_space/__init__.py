"""fomm-space: the First Order Motion Model (Siarohin et al., NeurIPS 2019) and its
successor, the Thin-Plate Spline Motion Model (Zhao & Zhang, CVPR 2022), as a library.

>>> import fomm_space
>>> model = fomm_space.load_model("vox")               # downloads the published checkpoint
>>> frames = model.animate(source, driving)            # (N, 256, 256, 3) float32 in [0, 1]
>>> tps = fomm_space.load_model("tps-vox")             # TPSMM, same engine and API
>>> live = fomm_space.LiveSession(model, photo)        # webcam: live.push(frame) -> frame
"""

from .config import ModelConfig
from .families import read_config
from .live import LiveSession
from .errors import CheckpointError, ConfigError, FommError, InputError, ModelNotFoundError, OutputError
from .model import AnimationBatch, AnimationModel, FommModel, PreparedSource, load_model
from .options import DEFAULTS, LIVE_DEFAULTS, AnimationOptions
from .registry import MODELS, ModelSpec

__all__ = [
    "AnimationBatch", "AnimationModel", "AnimationOptions", "CheckpointError", "ConfigError", "DEFAULTS", "FommError",
    "FommModel", "InputError", "LIVE_DEFAULTS", "LiveSession", "MODELS", "ModelConfig", "ModelNotFoundError", "ModelSpec",
    "OutputError", "PreparedSource", "load_model", "read_config",
]
__version__ = "0.1.0"
