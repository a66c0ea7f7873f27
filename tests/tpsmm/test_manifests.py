"""Every published TPSMM config builds networks whose state dicts have exactly the tensor
names and shapes of the published checkpoints."""

import json

import pytest

from fomm_space.checkpoint import LAYOUTS
from fomm_space.families import read_config
from fomm_space.registry import MODELS
from fomm_space.tpsmm import TpsmmConfig
from tests.conftest import TPSMM_MANIFESTS

TPSMM = {name: spec for name, spec in MODELS.items() if spec.family == "tpsmm"}
PARTS = ("kp_detector", "dense_motion_network", "inpainting_network", "avd_network")


@pytest.mark.parametrize("spec", list(TPSMM.values()), ids=list(TPSMM))
def test_state_dicts_match_published_checkpoint(spec):
    manifest = json.loads((TPSMM_MANIFESTS / (spec.config[len("tps-"):-5] + ".json")).read_text())
    config = read_config(spec.config_path)
    assert isinstance(config, TpsmmConfig) and spec.filename == manifest["checkpoint_file"]
    assert list(config.frame_shape) == manifest["frame_shape"]
    networks = config.build()
    for part in PARTS:
        module = getattr(networks, part)
        assert {k: list(v.shape) for k, v in module.state_dict().items()} == manifest[part], part
        assert sum(p.numel() for p in module.parameters()) == manifest["param_counts"][part]
    assert {p for parts in LAYOUTS["tpsmm"] for p in parts} == set(manifest["inference_networks"])


def test_every_published_config_is_registered():
    assert {p.stem for p in TPSMM_MANIFESTS.glob("*.json")} == {s.config[len("tps-"):-5] for s in TPSMM.values()}
