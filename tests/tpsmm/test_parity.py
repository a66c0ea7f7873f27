"""The TPSMM networks and the engine give the outputs recorded from the authors' code,
within the tolerances measured in the reference (keypoints 2e-5; dense motion and
inpainting fed the recorded keypoints 3e-4, their internals 2e-5; end to end 3e-3 at
most and 2e-5 on average)."""

import os

import numpy as np
import pytest
import torch

import fomm_space
from fomm_space.checkpoint import load_state, read_checkpoint
from fomm_space.families import read_config
from tests.conftest import TPSMM_CASES, TPSMM_PARITY

MODES = {"standard": dict(relative=False), "relative": dict(relative=True), "avd": dict(avd=True)}
# FOMM_TEST_DEVICE=cuda runs the engine's parity tests on a GPU (fp32 there too).
DEVICE = os.environ.get("FOMM_TEST_DEVICE", "cpu")


def networks_of(name):
    folder = TPSMM_PARITY / name
    config = read_config(folder / "config.yaml")
    networks = config.build()
    state = read_checkpoint(folder / "checkpoint.pth.tar", family="tpsmm")
    for part, weights in state.items():
        load_state(getattr(networks, part), weights, part=part, source=name)
    return networks.eval(), np.load(folder / "expected.npz")


def image(array):
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None]


@pytest.mark.parametrize("name", TPSMM_CASES)
def test_keypoints_and_motion_transfer(name):
    networks, expected = networks_of(name)
    with torch.no_grad():
        kp_source = networks.keypoints(image(expected["source"]))
        kp_driving = networks.keypoints(torch.from_numpy(expected["driving"]).permute(0, 3, 1, 2))
        initial = {"value": kp_driving["value"][:1]}
        np.testing.assert_allclose(kp_source["value"][0], expected["kp_source_fg_kp"], atol=2e-5)
        np.testing.assert_allclose(kp_driving["value"], expected["kp_driving_fg_kp"], atol=2e-5)
        for mode, kwargs in MODES.items():
            moved = networks.transfer(kp_source, kp_driving, initial, adapt_scale=True, scale=None,
                                      **{"relative": False, **kwargs})
            np.testing.assert_allclose(moved["value"], expected[f"kp_norm_fg_kp_{mode}"], atol=2e-5)


@pytest.mark.parametrize("name", TPSMM_CASES)
def test_dense_motion_and_inpainting_internals(name):
    """Fed the recorded keypoints of the last frame (relative mode)."""
    networks, expected = networks_of(name)
    dense, inpainting = networks.dense_motion_network, networks.inpainting_network
    source = image(expected["source"])
    kp_source = torch.from_numpy(expected["kp_source_fg_kp"])[None]
    kp_driving = torch.from_numpy(expected["kp_norm_fg_kp_relative"][-1:])
    with torch.no_grad():
        np.testing.assert_allclose(dense.downsample(source)[0], expected["last_frame_source_down"], atol=2e-5)
        motion = dense(source, kp_driving, kp_source)
        out = inpainting(source, motion)
    atol = 2e-5
    np.testing.assert_allclose(motion["transformations"][0], expected["last_frame_transformations"], atol=atol)
    np.testing.assert_allclose(motion["deformed_source"][0], expected["last_frame_deformed_source"], atol=atol)
    np.testing.assert_allclose(motion["contribution_maps"][0], expected["last_frame_contribution_maps"], atol=atol)
    np.testing.assert_allclose(motion["deformation"][0], expected["last_frame_deformation"], atol=atol)
    maps = sorted(k for k in expected.files if k.startswith("last_frame_occlusion_map_"))
    assert len(motion["occlusion_map"]) == len(maps)
    for i, got in enumerate(motion["occlusion_map"]):
        np.testing.assert_allclose(got[0], expected[f"last_frame_occlusion_map_{i}"], atol=atol)
    for i, got in enumerate(out["warped_encoder_maps"]):  # features, some above 1: relative too
        np.testing.assert_allclose(got[0], expected[f"last_frame_warped_encoder_map_{i}"], atol=atol, rtol=1e-4)
    np.testing.assert_allclose(out["deformed"][0], expected["last_frame_deformed"], atol=atol)
    np.testing.assert_allclose(out["prediction"][0].permute(1, 2, 0), expected["prediction_relative"][-1], atol=3e-4)


@pytest.mark.parametrize("name", TPSMM_CASES)
def test_thin_plate_spline_parameters(name):
    from fomm_space.tpsmm.networks.tps import tps_parameters

    _, expected = networks_of(name)
    k = expected["last_frame_tps_theta"].shape[0]
    driving = torch.from_numpy(expected["kp_norm_fg_kp_relative"][-1]).view(1, k, 5, 2)
    source = torch.from_numpy(expected["kp_source_fg_kp"]).view(1, k, 5, 2)
    affine, radial = tps_parameters(driving, source)
    np.testing.assert_allclose(affine[0].transpose(1, 2), expected["last_frame_tps_theta"], atol=2e-5)
    np.testing.assert_allclose(radial[0], expected["last_frame_tps_control_params"], atol=2e-5)


@pytest.fixture(scope="module", params=TPSMM_CASES)
def engine_case(request):
    folder = TPSMM_PARITY / request.param
    model = fomm_space.load_model(config=folder / "config.yaml", checkpoint=folder / "checkpoint.pth.tar",
                                  device=DEVICE, precision="fp32")
    return model, np.load(folder / "expected.npz")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("batch_size", [1, 4])
def test_engine_matches_authors_end_to_end(engine_case, mode, batch_size):
    model, expected = engine_case
    out = model.animate(expected["source"], expected["driving"], batch_size=batch_size, **MODES[mode])
    assert out.dtype == np.float32 and out.shape == expected["driving"].shape
    error = np.abs(out - expected[f"prediction_{mode}"])
    assert error.max() <= 3e-3 and error.mean() <= 2e-5, (error.max(), error.mean())


@pytest.mark.parametrize("name", TPSMM_CASES)
def test_inference_rewrites_keep_parity(name):
    """The engine without its rewrites (BatchNorm folding, CPU convolution methods) is
    within the same tolerance, and the rewritten one close to it."""
    networks, expected = networks_of(name)
    config = read_config(TPSMM_PARITY / name / "config.yaml")
    plain = fomm_space.AnimationModel(networks, config, device="cpu", precision="fp32", optimize=False)
    fast = fomm_space.AnimationModel(networks, config, device="cpu", precision="fp32")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.networks.kp_detector.modules())
    for mode, kwargs in MODES.items():
        reference = plain.animate(expected["source"], expected["driving"], **kwargs)
        error = np.abs(reference - expected[f"prediction_{mode}"])
        assert error.max() <= 3e-3 and error.mean() <= 2e-5
        assert np.abs(fast.animate(expected["source"], expected["driving"], **kwargs) - reference).mean() <= 2e-5


def test_relative_mode_without_scale_adaptation_moves_by_the_plain_displacement(engine_case):
    model, expected = engine_case
    batches = list(model.stream(expected["source"], expected["driving"], relative=True, adapt_scale=False))
    kp_source = model.prepare_source(expected["source"]).keypoints_array
    drv = np.concatenate([b.driving_keypoints for b in batches])
    moved = np.concatenate([b.keypoints for b in batches])
    np.testing.assert_allclose(moved, kp_source + drv - drv[:1], atol=1e-5)
    assert float(expected["relative_scale"]) != 1.0  # the scaled mode differs from this one


@pytest.mark.parametrize("name", TPSMM_CASES)
@pytest.mark.parametrize("precision", ["fp16" if DEVICE.startswith("cuda") else "bf16", "auto"])
def test_reduced_precision_keeps_the_picture(name, precision):
    folder = TPSMM_PARITY / name
    model = fomm_space.load_model(config=folder / "config.yaml", checkpoint=folder / "checkpoint.pth.tar",
                                  device=DEVICE, precision=precision)
    expected = np.load(folder / "expected.npz")
    out = model.animate(expected["source"], expected["driving"])
    mse = float(np.mean((out.astype(np.float64) - expected["prediction_relative"]) ** 2))
    assert 10 * np.log10(1 / max(mse, 1e-12)) >= 40
