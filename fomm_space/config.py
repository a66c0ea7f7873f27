"""FOMM model configs: the published YAML files, parsed and checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

_REQUIRED = {
    "common_params": ("num_kp", "num_channels"),
    "kp_detector_params": ("temperature", "block_expansion", "max_features", "num_blocks"),
    "generator_params": ("block_expansion", "max_features", "num_down_blocks", "num_bottleneck_blocks"),
}


@dataclass(frozen=True)
class ModelConfig:
    """The model part of a FOMM config (``model_params`` and ``frame_shape``)."""

    frame_shape: tuple[int, int, int]
    common_params: dict[str, Any]
    kp_detector_params: dict[str, Any]
    generator_params: dict[str, Any]
    source: str = field(default="<dict>", compare=False)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames the model works on."""
        return self.frame_shape[0], self.frame_shape[1]

    @property
    def num_kp(self) -> int:
        return int(self.common_params["num_kp"])

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "ModelConfig":
        """Build from a parsed YAML document (the authors' layout)."""
        if not isinstance(data, dict) or not isinstance(data.get("model_params"), dict):
            raise ConfigError(f"{source} is not a FOMM config: it has no 'model_params' section.")
        params = data["model_params"]
        for section, keys in _REQUIRED.items():
            sub = params.get(section)
            if not isinstance(sub, dict):
                raise ConfigError(f"{source}: 'model_params.{section}' is missing; "
                                  "use one of the published configs in config/ as a template.")
            missing = [k for k in keys if k not in sub]
            if missing:
                raise ConfigError(f"{source}: 'model_params.{section}' lacks {', '.join(missing)}.")
        shape = (data.get("dataset_params") or {}).get("frame_shape", [256, 256, 3])
        try:
            frame_shape = tuple(int(v) for v in shape)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: 'dataset_params.frame_shape' must be [H, W, C], got {shape!r}.") from e
        if len(frame_shape) != 3 or min(frame_shape) < 1:
            raise ConfigError(f"{source}: 'dataset_params.frame_shape' must be [H, W, C], got {shape!r}.")
        return cls(frame_shape=frame_shape,  # type: ignore[arg-type]
                   common_params=dict(params["common_params"]),
                   kp_detector_params=dict(params["kp_detector_params"]),
                   generator_params=dict(params["generator_params"]),
                   source=source)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ModelConfig":
        """Read a config file; raises :class:`ConfigError` with the reason."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise ConfigError(f"Config file {path} does not exist; give the path of a YAML file "
                              f"such as {CONFIG_DIR / 'vox-256.yaml'}.") from e
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"Config file {path} can't be read ({e}).") from e
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"Config file {path} is not valid YAML ({e}).") from e
        return cls.from_dict(data, source=str(path))

    def build(self, *, align_corners: bool = True):
        """Create the randomly initialised networks: ``(KPDetector, OcclusionAwareGenerator)``."""
        from .networks import KPDetector, OcclusionAwareGenerator

        try:
            kp_detector = KPDetector(**self.kp_detector_params, **self.common_params)
            generator = OcclusionAwareGenerator(**self.generator_params, **self.common_params,
                                                align_corners=align_corners)
        except TypeError as e:
            raise ConfigError(f"{self.source}: unexpected model parameter ({e}).") from e
        return kp_detector, generator
