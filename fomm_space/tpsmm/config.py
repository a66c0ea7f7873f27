"""TPSMM configs: the ``model_params`` of the authors' YAML files, checked.

The published configs say ``frame_shape: null``; the size is then the one in the file
name (``ted-384.yaml``), else 256x256 (see :func:`fomm_space.config.frame_shape_of`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import MAX_BLOCKS, MAX_FEATURES, ModelConfig, check_int, check_number, frame_shape_of, section
from ..errors import ConfigError

_REQUIRED = {
    "common_params": ("num_tps", "num_channels"),
    "generator_params": ("block_expansion", "max_features", "num_down_blocks"),
    "dense_motion_params": ("block_expansion", "max_features", "num_blocks", "scale_factor"),
}


@dataclass(frozen=True)
class TpsmmConfig(ModelConfig):
    """A Thin-Plate Spline Motion Model: keypoint detector, dense motion, inpainting and
    (optionally) AVD networks."""

    generator_params: dict[str, Any] = field(default_factory=dict)
    dense_motion_params: dict[str, Any] = field(default_factory=dict)
    avd_network_params: dict[str, Any] = field(default_factory=dict)

    family: ClassVar[str] = "tpsmm"

    @property
    def num_tps(self) -> int:
        return int(self.common_params["num_tps"])

    @property
    def num_kp(self) -> int:
        return 5 * self.num_tps

    @classmethod
    def _parse(cls, data: dict, source: str) -> "TpsmmConfig":
        params = data["model_params"]
        sections = {name: section(params, name, keys, source) for name, keys in _REQUIRED.items()}
        avd = params.get("avd_network_params") or {}
        if not isinstance(avd, dict):
            raise ConfigError(f"{source}: 'model_params.avd_network_params' must be a mapping.")
        common, generator, dense = sections["common_params"], sections["generator_params"], \
            sections["dense_motion_params"]
        check_int(common, "num_tps", f"{source}: common_params", 1, 64)
        check_int(common, "num_channels", f"{source}: common_params", 1, 4)
        for name, sub in (("generator_params", generator), ("dense_motion_params", dense),
                          ("avd_network_params", avd)):
            for key in ("block_expansion", "max_features", "id_bottle_size", "pose_bottle_size"):
                check_int(sub, key, f"{source}: {name}", 1, MAX_FEATURES)
        check_int(generator, "num_down_blocks", f"{source}: generator_params", 1, MAX_BLOCKS)
        check_int(dense, "num_blocks", f"{source}: dense_motion_params", 1, MAX_BLOCKS)
        check_number(dense, "scale_factor", f"{source}: dense_motion_params", 0, 1)
        frame_shape = frame_shape_of(data, source)
        _check_sizes(frame_shape[:2], bool(common.get("multi_mask", True)), generator["num_down_blocks"],
                     dense["num_blocks"], dense["scale_factor"], source)
        return cls(frame_shape=frame_shape, common_params=common, generator_params=generator,
                   dense_motion_params=dense, avd_network_params=dict(avd), source=source)

    def build(self, **_: Any):
        """The randomly initialised networks: a :class:`~fomm_space.tpsmm.family.TpsmmNetworks`."""
        from .family import TpsmmNetworks
        from .networks import AVDNetwork, DenseMotionNetwork, InpaintingNetwork, KPDetector

        try:
            return TpsmmNetworks(
                KPDetector(**self.common_params),
                DenseMotionNetwork(**self.common_params, **self.dense_motion_params),
                InpaintingNetwork(**self.generator_params, **self.common_params),
                AVDNetwork(num_tps=self.num_tps, **self.avd_network_params))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{self.source}: unexpected model parameter ({e}).") from e


def _check_sizes(size: tuple[int, int], multi_mask: bool, num_down_blocks: int, num_blocks: int,
                 scale_factor: float, source: str) -> None:
    """The architecture's size rules (the authors' code fails later with a tensor mismatch)."""
    if multi_mask:
        if num_down_blocks != 3:
            raise ConfigError(f"{source}: multi_mask needs generator_params.num_down_blocks = 3 "
                              f"(four occlusion maps), got {num_down_blocks}.")
        ups = math.log2(1 / scale_factor)
        if ups != int(ups) or not 4 - num_blocks <= ups <= 4:
            raise ConfigError(f"{source}: with multi_mask, dense_motion_params.scale_factor must be 1/2, 1/4, "
                              f"1/8 or 1/16 with num_blocks >= 4 - log2(1/scale_factor); got {scale_factor:g} "
                              f"and {num_blocks}.")
    for side in size:
        small = side * scale_factor
        if side % 2 ** num_down_blocks or small != int(small) or int(small) % 2 ** num_blocks:
            raise ConfigError(f"{source}: frame size {size[0]}x{size[1]} does not fit the networks: each side must "
                              f"divide by {2 ** num_down_blocks}, and times scale_factor ({scale_factor:g}) by "
                              f"{2 ** num_blocks}.")
