"""The Thin-Plate Spline Motion Model family (Zhao & Zhang, CVPR 2022): config, networks
and their adapter to the engine."""

from .config import TpsmmConfig
from .family import TpsmmNetworks

__all__ = ["TpsmmConfig", "TpsmmNetworks"]
