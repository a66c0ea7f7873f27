"""The networks give the outputs recorded from the authors' implementation."""

import numpy as np
import pytest
import torch

from fomm_space.checkpoint import load_state, read_checkpoint
from fomm_space.families import read_config
from fomm_space.motion import transfer_motion
from tests.conftest import PARITY, PARITY_CASES

ATOL = 1e-4
MODES = [(r, a) for r in (0, 1) for a in (0, 1)]


def build(name, align_corners):
    folder = PARITY / name
    networks = read_config(folder / "config.yaml").build(align_corners=align_corners)
    kp_detector, generator = networks.kp_detector, networks.generator
    state = read_checkpoint(folder / "checkpoint.pth.tar")
    load_state(kp_detector, state["kp_detector"], part="kp_detector", source=name)
    load_state(generator, state["generator"], part="generator", source=name)
    return kp_detector.eval(), generator.eval(), np.load(folder / "expected.npz")


@pytest.mark.parametrize("name", list(PARITY_CASES))
def test_networks_match_authors(name):
    kp_detector, generator, expected = build(name, PARITY_CASES[name])
    with torch.no_grad():
        source = torch.from_numpy(expected["source"]).permute(2, 0, 1)[None]
        driving = torch.from_numpy(expected["driving"]).permute(0, 3, 1, 2)
        kp_source, kp_driving = kp_detector(source), kp_detector(driving)
        np.testing.assert_allclose(kp_source["value"][0], expected["kp_source_value"], atol=ATOL)
        np.testing.assert_allclose(kp_source["jacobian"][0], expected["kp_source_jacobian"], atol=ATOL)
        np.testing.assert_allclose(kp_driving["value"], expected["kp_driving_value"], atol=ATOL)
        np.testing.assert_allclose(kp_driving["jacobian"], expected["kp_driving_jacobian"], atol=ATOL)
        initial = {k: v[:1] for k, v in kp_driving.items()}
        for rel, adapt in MODES:
            kp_norm = transfer_motion(kp_source, kp_driving, initial, relative=bool(rel), adapt_scale=bool(adapt))
            np.testing.assert_allclose(kp_norm["value"], expected[f"kp_norm_value_rel{rel}_adapt{adapt}"], atol=ATOL)
            out = generator(source, kp_norm, kp_source)
            np.testing.assert_allclose(out["prediction"].permute(0, 2, 3, 1),
                                       expected[f"prediction_rel{rel}_adapt{adapt}"], atol=ATOL)
        # generator internals for the last frame with absolute motion (the last mode above is rel1;
        # recompute rel0)
        out = generator(source, transfer_motion(kp_source, kp_driving, initial, relative=False), kp_source)
        np.testing.assert_allclose(out["mask"][-1], expected["last_frame_mask"], atol=ATOL)
        np.testing.assert_allclose(out["occlusion_map"][-1], expected["last_frame_occlusion_map"], atol=ATOL)
        np.testing.assert_allclose(out["deformed"][-1], expected["last_frame_deformed"], atol=ATOL)


@pytest.mark.parametrize("name", list(PARITY_CASES))
def test_alignment_option_is_what_tells_the_fixtures_apart(name):
    """With the other grid_sample alignment the outputs differ clearly: the option matters."""
    _, generator_other, expected = build(name, not PARITY_CASES[name])
    kp_detector, _, _ = build(name, PARITY_CASES[name])
    with torch.no_grad():
        source = torch.from_numpy(expected["source"]).permute(2, 0, 1)[None]
        driving = torch.from_numpy(expected["driving"]).permute(0, 3, 1, 2)
        kp_source, kp_driving = kp_detector(source), kp_detector(driving)
        pred = generator_other(source, kp_driving, kp_source)["prediction"].permute(0, 2, 3, 1).numpy()
    assert np.abs(pred - expected["prediction_rel0_adapt0"]).max() > 1e-2
