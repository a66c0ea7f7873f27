"""Every published config builds networks whose state dicts have exactly the tensor
names and shapes of the published checkpoints."""

import json

import pytest

from fomm_space.families import read_config
from fomm_space.registry import MODELS
from tests.conftest import MANIFESTS


FOMM = {name: spec for name, spec in MODELS.items() if spec.family == "fomm"}


@pytest.mark.parametrize("spec", list(FOMM.values()), ids=list(FOMM))
def test_state_dict_matches_published_checkpoint(spec):
    manifest = json.loads((MANIFESTS / spec.config.replace(".yaml", ".json")).read_text())
    networks = read_config(spec.config_path).build()
    kp_detector, generator = networks.kp_detector, networks.generator
    for part, module in (("kp_detector", kp_detector), ("generator", generator)):
        ours = {k: list(v.shape) for k, v in module.state_dict().items()}
        assert ours == manifest[part], f"{spec.config} {part} differs"
    n_params = sum(p.numel() for p in generator.parameters())
    assert n_params == manifest["generator_params"]
    assert sum(p.numel() for p in kp_detector.parameters()) == manifest["kp_detector_params"]


def test_every_published_config_has_a_manifest():
    assert {p.stem for p in MANIFESTS.glob("*.json")} == {s.config[:-5] for s in FOMM.values()}
