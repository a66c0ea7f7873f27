"""The First Order Motion Model family (Siarohin et al., NeurIPS 2019): config, networks
and their adapter to the engine."""

from .config import FommConfig
from .family import FommNetworks

__all__ = ["FommConfig", "FommNetworks"]
