"""The TPSMM networks (Zhao & Zhang, CVPR 2022), as plain ``nn.Module``s named as in the
published checkpoints."""

from .avd import AVDNetwork
from .dense_motion import DenseMotionNetwork
from .inpainting import InpaintingNetwork
from .keypoint_detector import KPDetector

__all__ = ["AVDNetwork", "DenseMotionNetwork", "InpaintingNetwork", "KPDetector"]
