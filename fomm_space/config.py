"""Model configs: the published YAML files, parsed and checked.

One config describes one model of one family: FOMM (``common_params.num_kp``) or
TPSMM (``common_params.num_tps``). This module holds what the families' configs share;
:func:`fomm_space.families.read_config` tells the families apart and returns a
:class:`~fomm_space.fomm.config.FommConfig` or a
:class:`~fomm_space.tpsmm.config.TpsmmConfig`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from .errors import ConfigError

# The published models' configs: inside the package where it is installed (a wheel),
# else the checkout's config/ (the Space, a clone).
_PACKAGED = Path(__file__).resolve().parent / "configs"
CONFIG_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parent.parent / "config"
# Bounds for the integer model parameters: far above every published model, low
# enough that a mistyped number fails here instead of allocating terabytes.
MAX_FEATURES = 4096
MAX_BLOCKS = 8
MAX_FRAME_SIDE = 1024


def family_of(data: Any) -> str | None:
    """``"fomm"``, ``"tpsmm"`` or ``None`` for a parsed YAML document."""
    common = (data.get("model_params") or {}).get("common_params") if isinstance(data, dict) else None
    if not isinstance(common, dict):
        return None
    if "num_tps" in common:
        return "tpsmm"
    if "num_kp" in common:
        return "fomm"
    return None


def section(params: dict, name: str, keys: tuple[str, ...], source: str) -> dict[str, Any]:
    """``model_params[name]`` as a dict holding ``keys``; :class:`ConfigError` otherwise."""
    sub = params.get(name)
    if not isinstance(sub, dict):
        raise ConfigError(f"{source}: 'model_params.{name}' is missing; "
                          "use one of the published configs in config/ as a template.")
    missing = [k for k in keys if k not in sub]
    if missing:
        raise ConfigError(f"{source}: 'model_params.{name}' lacks {', '.join(missing)}.")
    return dict(sub)


def check_int(params: dict[str, Any], key: str, where: str, lo: int, hi: int) -> None:
    """``params[key]`` (if present) must be an int in [lo, hi]."""
    if key not in params:
        return
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{where}.{key} must be a whole number from {lo} to {hi}, got {value!r}.")


def check_number(params: dict[str, Any], key: str, where: str, lo: float, hi: float) -> None:
    """``params[key]`` (if present) must be a number in (lo, hi]."""
    if key not in params:
        return
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo < value <= hi:
        raise ConfigError(f"{where}.{key} must be a number above {lo:g} and at most {hi:g}, got {value!r}.")


def frame_shape_of(data: dict, source: str) -> tuple[int, int, int]:
    """``dataset_params.frame_shape``; where it is null (TPSMM's published configs), the
    size in the file name (``ted-384.yaml``: 384x384), else 256x256 as the authors' demo."""
    dataset = data.get("dataset_params")
    shape = dataset.get("frame_shape") if isinstance(dataset, dict) else None
    if shape is None:
        match = re.search(r"-(\d+)\.ya?ml$", source)
        side = int(match.group(1)) if match else 256
        shape = [side, side, 3]
    try:
        frame_shape = tuple(int(v) for v in shape)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: 'dataset_params.frame_shape' must be [H, W, C], got {shape!r}.") from e
    if len(frame_shape) != 3 or min(frame_shape) < 1 or max(frame_shape[:2]) > MAX_FRAME_SIDE:
        raise ConfigError(f"{source}: 'dataset_params.frame_shape' must be [H, W, C] with sides up to "
                          f"{MAX_FRAME_SIDE}, got {shape!r}.")
    return frame_shape  # type: ignore[return-value]


@dataclass(frozen=True)
class ModelConfig:
    """The model part of a config (``model_params`` and ``frame_shape``) of either family.

    A family's subclass reads configs of that family (:meth:`from_yaml`,
    :meth:`from_dict`); :func:`fomm_space.families.read_config` reads one of any family.
    """

    frame_shape: tuple[int, int, int]
    common_params: dict[str, Any]
    source: str = field(default="<dict>", compare=False)

    family: ClassVar[str] = ""   # "fomm" or "tpsmm": also the checkpoint layout (checkpoint.LAYOUTS)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames the model works on."""
        return self.frame_shape[0], self.frame_shape[1]

    @property
    def num_kp(self) -> int:
        """Keypoints per image."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "ModelConfig":
        """Build from a parsed YAML document (the authors' layout) of this class's family."""
        if not cls.family:
            raise TypeError("ModelConfig is the families' base: read a config of any family with "
                            "fomm_space.read_config() or fomm_space.families.config_from_dict()")
        family = check_family(data, source)
        if family != cls.family:
            raise ConfigError(f"{source} is a {family.upper()} config, not a {cls.family.upper()} one.")
        return cls._parse(data, source)

    @classmethod
    def _parse(cls, data: dict, source: str) -> "ModelConfig":
        raise NotImplementedError

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ModelConfig":
        """Read a config file of this class's family; raises :class:`ConfigError` with
        the reason."""
        return cls.from_dict(read_yaml(path), source=str(path))

    def build(self, **kwargs: Any):
        """The randomly initialised networks of this model: a
        :class:`~fomm_space.family.MotionFamily`."""
        raise NotImplementedError


def read_yaml(path: str | Path) -> Any:
    """A config file's parsed YAML; :class:`ConfigError` where it can't be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"Config file {path} does not exist; give the path of a YAML file "
                          f"such as {CONFIG_DIR / 'vox-256.yaml'}.") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Config file {path} can't be read ({e}).") from e
    try:
        return yaml.safe_load(text)
    except Exception as e:  # any parser failure (YAMLError, RecursionError, ...) is a bad file
        raise ConfigError(f"Config file {path} is not valid YAML ({type(e).__name__}).") from e


def check_family(data: Any, source: str) -> str:
    """The family of a parsed config (``"fomm"`` or ``"tpsmm"``); :class:`ConfigError`
    for a document that is no config of either."""
    if not isinstance(data, dict) or not isinstance(data.get("model_params"), dict):
        raise ConfigError(f"{source} is not a FOMM or TPSMM config: it has no 'model_params' section.")
    family = family_of(data)
    if family is None:
        raise ConfigError(f"{source}: 'model_params.common_params' names neither num_kp (FOMM) nor num_tps "
                          "(TPSMM); use one of the published configs in config/ as a template.")
    return family


__all__ = ["CONFIG_DIR", "ModelConfig", "check_family", "family_of", "read_yaml"]
