"""The model families by name, above them: a config read by whichever family it belongs
to (as diffusers' auto classes dispatch by name), so that the shared base classes know no
family and no family knows another."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .config import ModelConfig, check_family, read_yaml

FAMILIES: dict[str, tuple[str, str]] = {
    "fomm": ("fomm_space.fomm.config", "FommConfig"),
    "tpsmm": ("fomm_space.tpsmm.config", "TpsmmConfig"),
}
"""Family name -> (module, class) of its config; the class builds its networks."""


def config_class(family: str) -> type[ModelConfig]:
    """The config class of ``family`` (a key of :data:`FAMILIES`)."""
    module, name = FAMILIES[family]
    return getattr(importlib.import_module(module), name)


def config_from_dict(data: Any, source: str = "<dict>") -> ModelConfig:
    """A parsed config document (the authors' layout) of either family, as that family's
    config; :class:`~fomm_space.errors.ConfigError` with the reason otherwise."""
    return config_class(check_family(data, source)).from_dict(data, source)


def read_config(path: str | Path) -> ModelConfig:
    """A config file of either family, as that family's config (FOMM: ``num_kp``, TPSMM:
    ``num_tps``); :class:`~fomm_space.errors.ConfigError` with the reason otherwise."""
    return config_from_dict(read_yaml(path), source=str(path))


__all__ = ["FAMILIES", "config_class", "config_from_dict", "read_config"]
