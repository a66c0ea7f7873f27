"""The published checkpoints of both families, by name: FOMM's eight, TPSMM's four."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from .config import CONFIG_DIR
from .errors import ModelNotFoundError

DEFAULT_REPO_ID = "MCMLXXXVII/thinplatesv1"
# TPSMM's authors publish on Google Drive and Tsinghua Cloud only; this public Hub copy
# holds vox.pth.tar (what a public deployment of it downloads). Whether it holds the
# other three could not be checked from here: point TPSMM_REPO_ID at a mirror that does.
TPSMM_REPO_ID = "VESSL/thin-plate-spline-motion-model"
# The repositories' commits could not be looked up from here; "main" is pinned per file
# by its sha256 where known. Mirrors and pins per family: FOMM_REPO_ID / FOMM_REVISION,
# TPSMM_REPO_ID / TPSMM_REVISION, or --repo-id / --revision.
DEFAULT_REVISION = "main"
FAMILY_ENV = {"fomm": ("FOMM_REPO_ID", "FOMM_REVISION"), "tpsmm": ("TPSMM_REPO_ID", "TPSMM_REVISION")}
FAMILY_TITLES = {"fomm": "First Order Motion Model (2019)", "tpsmm": "Thin-Plate Spline Motion Model (2022)"}


@dataclass(frozen=True)
class ModelSpec:
    """Where a named model's config and checkpoint live."""

    name: str
    config: str
    filename: str
    description: str
    repo_id: str = DEFAULT_REPO_ID
    revision: str = DEFAULT_REVISION
    sha256: str | None = None
    size: int | None = None
    family: str = "fomm"

    @property
    def config_path(self):
        return CONFIG_DIR / self.config


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("vox", "vox-256.yaml", "vox-cpk.pth.tar", "Faces (VoxCeleb talking heads)",
              sha256="abb41ab1f279f26326c0d6e4d20702de6658364665aa1313daa7a63e89ea2b23",
              size=728_766_691),
    ModelSpec("vox-adv", "vox-adv-256.yaml", "vox-adv-cpk.pth.tar",
              "Faces, trained with an adversarial loss (sharper, less stable)"),
    ModelSpec("taichi", "taichi-256.yaml", "taichi-cpk.pth.tar", "Full bodies (Tai-Chi-HD)"),
    ModelSpec("taichi-adv", "taichi-adv-256.yaml", "taichi-adv-cpk.pth.tar",
              "Full bodies, trained with an adversarial loss"),
    ModelSpec("fashion", "fashion-256.yaml", "fashion.pth.tar", "Fashion models on plain backgrounds"),
    ModelSpec("mgif", "mgif-256.yaml", "mgif-cpk.pth.tar", "Cartoon animals (Moving GIF)"),
    ModelSpec("nemo", "nemo-256.yaml", "nemo-cpk.pth.tar", "Smiling faces (NEMO)"),
    ModelSpec("bair", "bair-256.yaml", "bair-cpk.pth.tar", "Robot arm pushing objects (BAIR)"),
    ModelSpec("tps-vox", "tps-vox-256.yaml", "vox.pth.tar", "Faces (VoxCeleb), TPSMM: steadier, sharper faces",
              repo_id=TPSMM_REPO_ID, family="tpsmm"),
    ModelSpec("tps-taichi", "tps-taichi-256.yaml", "taichi.pth.tar", "Full bodies (Tai-Chi-HD), TPSMM",
              repo_id=TPSMM_REPO_ID, family="tpsmm"),
    ModelSpec("tps-ted", "tps-ted-384.yaml", "ted.pth.tar", "Upper bodies of speakers (TED talks), TPSMM, 384x384",
              repo_id=TPSMM_REPO_ID, family="tpsmm"),
    ModelSpec("tps-mgif", "tps-mgif-256.yaml", "mgif.pth.tar", "Cartoon animals (Moving GIF), TPSMM",
              repo_id=TPSMM_REPO_ID, family="tpsmm"),
)}
DEFAULT_MODEL = "vox"


def get_spec(name: str, *, repo_id: str | None = None, revision: str | None = None) -> ModelSpec:
    """Look a model up by name; ``repo_id``/``revision`` (or the family's variables,
    FOMM_REPO_ID/FOMM_REVISION or TPSMM_REPO_ID/TPSMM_REVISION) point it at a mirror."""
    try:
        spec = MODELS[name]
    except (KeyError, TypeError) as e:
        raise ModelNotFoundError(f"Unknown model {name!r}; choose one of: {', '.join(MODELS)}.") from e
    repo_env, revision_env = FAMILY_ENV[spec.family]
    repo_id = repo_id or os.environ.get(repo_env) or spec.repo_id
    revision = revision or os.environ.get(revision_env) or spec.revision
    return replace(spec, repo_id=repo_id, revision=revision)
