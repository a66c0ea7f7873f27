"""The three FOMM networks, as plain ``nn.Module``s named as in the paper (Siarohin et al., NeurIPS 2019)."""

from .dense_motion import DenseMotionNetwork
from .generator import OcclusionAwareGenerator
from .keypoint_detector import KPDetector

__all__ = ["DenseMotionNetwork", "KPDetector", "OcclusionAwareGenerator"]
