"""FOMM configs: the ``model_params`` of the authors' YAML files, checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import MAX_BLOCKS, MAX_FEATURES, ModelConfig, check_int, check_number, frame_shape_of, section
from ..errors import ConfigError

_REQUIRED = {
    "common_params": ("num_kp", "num_channels"),
    "kp_detector_params": ("temperature", "block_expansion", "max_features", "num_blocks"),
    "generator_params": ("block_expansion", "max_features", "num_down_blocks", "num_bottleneck_blocks"),
}


@dataclass(frozen=True)
class FommConfig(ModelConfig):
    """A First Order Motion Model: keypoint detector and occlusion-aware generator."""

    kp_detector_params: dict[str, Any] = field(default_factory=dict)
    generator_params: dict[str, Any] = field(default_factory=dict)

    family: ClassVar[str] = "fomm"

    @property
    def num_kp(self) -> int:
        return int(self.common_params["num_kp"])

    @classmethod
    def _parse(cls, data: dict, source: str) -> "FommConfig":
        params = data["model_params"]
        sections = {name: section(params, name, keys, source) for name, keys in _REQUIRED.items()}
        check_int(sections["common_params"], "num_kp", "common_params", 1, 256)
        check_int(sections["common_params"], "num_channels", "common_params", 1, 4)
        for name in ("kp_detector_params", "generator_params"):
            where = f"{source}: {name}"
            for key in ("block_expansion", "max_features"):
                check_int(sections[name], key, where, 1, MAX_FEATURES)
            for key in ("num_blocks", "num_down_blocks", "num_bottleneck_blocks"):
                check_int(sections[name], key, where, 0 if key == "num_bottleneck_blocks" else 1, MAX_BLOCKS)
            check_number(sections[name], "scale_factor", where, 0, 1)
        check_number(sections["kp_detector_params"], "temperature", f"{source}: kp_detector_params", 0, 1e6)
        dense = sections["generator_params"].get("dense_motion_params")
        if not isinstance(dense, dict):
            raise ConfigError(f"{source}: generator_params.dense_motion_params is missing: a generator without "
                              "dense motion can't animate.")
        for key in ("block_expansion", "max_features"):
            check_int(dense, key, f"{source}: dense_motion_params", 1, MAX_FEATURES)
        check_int(dense, "num_blocks", f"{source}: dense_motion_params", 1, MAX_BLOCKS)
        check_number(dense, "scale_factor", f"{source}: dense_motion_params", 0, 1)
        return cls(frame_shape=frame_shape_of(data, source), common_params=sections["common_params"],
                   kp_detector_params=sections["kp_detector_params"],
                   generator_params=sections["generator_params"], source=source)

    def build(self, *, align_corners: bool = True):
        """The randomly initialised networks: a :class:`~fomm_space.fomm.family.FommNetworks`."""
        from .family import FommNetworks
        from .networks import KPDetector, OcclusionAwareGenerator

        try:
            kp_detector = KPDetector(**self.kp_detector_params, **self.common_params)
            generator = OcclusionAwareGenerator(**self.generator_params, **self.common_params,
                                                align_corners=align_corners)
        except TypeError as e:
            raise ConfigError(f"{self.source}: unexpected model parameter ({e}).") from e
        return FommNetworks(kp_detector, generator)
