"""The engine (load_model / animate / stream) against the authors' recorded outputs."""

import os

import numpy as np
import pytest
import torch
import yaml

import fomm_space
from fomm_space.families import config_from_dict
from fomm_space.errors import InputError
from fomm_space.model import FommModel
from tests.conftest import PARITY, PARITY_CASES

MODES = [(r, a) for r in (0, 1) for a in (0, 1)]
# FOMM_TEST_DEVICE=cuda runs the engine's parity tests on a GPU (fp32 there too).
DEVICE = os.environ.get("FOMM_TEST_DEVICE", "cpu")


def load_case(name: str, precision: str = "fp32") -> FommModel:
    folder = PARITY / name
    return fomm_space.load_model(config=folder / "config.yaml", checkpoint=folder / "checkpoint.pth.tar",
                                 device=DEVICE, precision=precision, align_corners=PARITY_CASES[name])


@pytest.fixture(scope="module", params=list(PARITY_CASES))
def case(request):
    return load_case(request.param), np.load(PARITY / request.param / "expected.npz")


@pytest.mark.parametrize("rel, adapt", MODES)
@pytest.mark.parametrize("batch_size", [1, 4])
def test_animate_matches_authors(case, rel, adapt, batch_size):
    model, expected = case
    out = model.animate(expected["source"], expected["driving"], relative=bool(rel), adapt_scale=bool(adapt),
                        batch_size=batch_size)
    assert out.dtype == np.float32 and out.shape == expected["driving"].shape
    np.testing.assert_allclose(out, expected[f"prediction_rel{rel}_adapt{adapt}"], atol=1e-4)


def test_stream_from_iterator_of_uint8_frames(case):
    model, expected = case
    driving = (expected["driving"] * 255 + 0.5).astype(np.uint8)
    source = (expected["source"] * 255 + 0.5).astype(np.uint8)
    whole = model.animate(source, driving, batch_size=4)
    batches = list(model.stream(source, iter(list(driving)), batch_size=4))
    assert [b.start for b in batches] == [0, 4]
    np.testing.assert_allclose(np.concatenate([b.frames for b in batches]), whole, atol=1e-6)
    kp = np.concatenate([b.driving_keypoints for b in batches])
    assert kp.shape == (len(driving), model.config.num_kp, 2) and np.abs(kp).max() <= 1
    prepared = model.prepare_source(source)
    assert prepared.keypoints_array.shape == (model.config.num_kp, 2)


def authors_best_frame(model, expected, best, relative, adapt):
    """The original demo: animate forwards from the best frame and backwards to it, join."""
    forward = model.animate(expected["source"], expected["driving"][best:], relative=relative, adapt_scale=adapt)
    backward = model.animate(expected["source"], expected["driving"][:best + 1][::-1], relative=relative,
                             adapt_scale=adapt)
    return np.concatenate([backward[::-1], forward[1:]])


@pytest.mark.parametrize("best", [0, 2, 5])
def test_best_frame_join(case, best):
    model, expected = case
    ref = authors_best_frame(model, expected, best, True, True)
    out = model.animate(expected["source"], expected["driving"], best_frame=best)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    streamed = np.concatenate([b.frames for b in model.stream(expected["source"], iter(expected["driving"]),
                                                              best_frame=best, batch_size=3)])
    np.testing.assert_allclose(streamed, ref, atol=1e-5)
    if best == 2:  # the fixture's frame 2 differs from frame 0; the reference matters
        assert np.abs(out - model.animate(expected["source"], expected["driving"])).max() > 1e-4


def test_frames_resized_to_model_size(case):
    model, expected = case
    big = np.repeat(np.repeat(expected["driving"], 2, axis=1), 2, axis=2)
    out = model.animate(expected["source"], big)
    assert out.shape == expected["driving"].shape


def test_bad_inputs(case):
    model, expected = case
    src, drv = expected["source"], expected["driving"]
    with pytest.raises(InputError, match="no frames"):
        model.animate(src, [])
    with pytest.raises(InputError, match="past the end"):
        model.animate(src, drv, best_frame=len(drv))
    with pytest.raises(InputError, match="past the end"):
        model.animate(src, iter(drv), best_frame=len(drv))
    with pytest.raises(InputError, match="must be in \\[0, 1\\]"):
        model.animate(src * 255, drv)
    with pytest.raises(InputError, match="RGB array"):
        model.animate(src[:, :, :2], drv)
    with pytest.raises(InputError, match="differ in size"):
        model.animate(src, [drv[0], drv[1][:32]])
    with pytest.raises(InputError, match="batch_size"):
        model.animate(src, drv, batch_size=0)


def test_grey_and_rgba_sources_accepted(case):
    model, expected = case
    grey = (expected["source"].mean(axis=2) * 255).astype(np.uint8)
    rgba = np.concatenate([expected["source"], np.ones_like(expected["source"][:, :, :1])], axis=2)
    assert model.animate(grey, expected["driving"][:2]).shape[0] == 2
    np.testing.assert_allclose(model.animate(rgba, expected["driving"][:2]),
                               model.animate(expected["source"], expected["driving"][:2]), atol=1e-6)


def test_model_without_jacobians_relative_motion():
    """The authors' code crashes here (relative jacobians of a model without them)."""
    data = yaml.safe_load((PARITY / "tiny-vox" / "config.yaml").read_text())
    data["model_params"]["common_params"]["estimate_jacobian"] = False
    config = config_from_dict(data)
    torch.manual_seed(0)
    model = FommModel(config.build(), config, device="cpu")
    rng = np.random.default_rng(0)
    src, drv = rng.random((64, 64, 3), dtype=np.float32), rng.random((3, 64, 64, 3), dtype=np.float32)
    batches = list(model.stream(src, drv, relative=True, adapt_scale=False))
    kp_source = model.prepare_source(src).keypoints_array
    moved = batches[0].keypoints
    # relative, no scale: source keypoints + (driving - first driving)
    np.testing.assert_allclose(moved, kp_source + batches[0].driving_keypoints - batches[0].driving_keypoints[:1],
                               atol=1e-5)
    np.testing.assert_allclose(moved[0], kp_source, atol=1e-6)


def test_unoptimised_engine_agrees(case):
    model, expected = case
    fast = model.config.build(align_corners=model.networks.generator.align_corners)
    plain = FommModel(fast, model.config, device="cpu", optimize=False)
    assert plain.animate(expected["source"], expected["driving"]).shape == expected["driving"].shape


def test_out_of_memory_is_retried_with_smaller_batches(tiny_files, monkeypatch):
    import torch

    import fomm_space

    # fp32: at bf16 (``auto`` on CPUs with native bf16) results differ with the batch size.
    tiny_model = fomm_space.load_model(config=tiny_files[0], checkpoint=tiny_files[1], device="cpu",
                                       precision="fp32", align_corners=False)

    rng = np.random.default_rng(3)
    source = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    driving = (rng.random((9, 64, 64, 3)) * 255).astype(np.uint8)
    expected = tiny_model.animate(source, driving, batch_size=1)
    # The retry is the one-batch-at-a-time path's (GPUs'): CPUs do not run out this way.
    monkeypatch.setattr(tiny_model, "_workers", lambda: 1)
    real = tiny_model.generate
    sizes = []

    def generate(prepared, kp):
        n = kp["value"].shape[0]
        sizes.append(n)
        if n > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(prepared, kp)

    monkeypatch.setattr(tiny_model, "generate", generate)
    got = tiny_model.animate(source, driving, batch_size=8)
    assert sizes[:3] == [8, 4, 2] and max(sizes[3:]) <= 2
    assert np.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("name", list(PARITY_CASES))
@pytest.mark.parametrize("precision", ["fp16" if DEVICE.startswith("cuda") else "bf16", "auto"])
def test_reduced_precision_stays_close_to_the_authors(name, precision):
    """Half precision (the default on a GPU) keeps the picture: PSNR >= 40 dB."""
    expected = np.load(PARITY / name / "expected.npz")
    out = load_case(name, precision).animate(expected["source"], expected["driving"])
    mse = float(np.mean((out.astype(np.float64) - expected["prediction_rel1_adapt1"]) ** 2))
    assert 10 * np.log10(1 / max(mse, 1e-12)) >= 40


def test_at_bf16_the_motion_runs_in_fp32_and_the_picture_stays(tiny_files):
    """bf16 (``auto`` on CPUs with native bf16; emulated elsewhere, with the same
    rounding): the source's preparation and the dense motion are fp32, the decoder
    bf16, and the frames stay within 40 dB of fp32."""
    import torch

    import fomm_space

    models = {p: fomm_space.load_model(config=tiny_files[0], checkpoint=tiny_files[1], device="cpu",
                                       precision=p, align_corners=False) for p in ("fp32", "bf16")}
    assert models["bf16"].motion_dtype == torch.float32 and models["bf16"].dtype == torch.bfloat16
    rng = np.random.default_rng(5)
    source = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    driving = (rng.random((4, 64, 64, 3)) * 255).astype(np.uint8)
    prepared = models["bf16"].prepare_source(source)
    assert all(v.dtype == torch.float32 for v in prepared.state.values() if torch.is_tensor(v))
    fp32, bf16 = (models[p].animate(source, driving) for p in ("fp32", "bf16"))
    mse = float(np.mean((fp32.astype(np.float64) - bf16) ** 2))
    assert 10 * np.log10(1 / mse) >= 40


def test_frames_stay_on_the_device_only_when_asked(tiny_model):
    rng = np.random.default_rng(6)
    source = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    driving = (rng.random((3, 64, 64, 3)) * 255).astype(np.uint8)
    assert all(b.on_device is None for b in tiny_model.stream(source, driving))
    for batch in tiny_model.stream(source, driving, keep_on_device=True):
        assert batch.on_device.device == tiny_model.device
        np.testing.assert_allclose(batch.on_device.permute(0, 2, 3, 1).float().cpu().numpy(), batch.frames)


def test_batches_in_workers_equal_one_at_a_time(tiny_files, monkeypatch):
    """On a CPU with two threads or more, batches run in two workers; the keypoints are
    still smoothed and transferred in order, so the frames are those of one batch at a
    time (fp32: bit for bit)."""
    import fomm_space

    model = fomm_space.load_model(config=tiny_files[0], checkpoint=tiny_files[1], device="cpu",
                                  precision="fp32", align_corners=False)
    rng = np.random.default_rng(5)
    source = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    driving = rng.integers(0, 256, (21, 64, 64, 3), dtype=np.uint8)
    assert model._workers() == 2
    batches = list(model.stream(source, iter(driving), smoothing=0.6, batch_size=2))
    assert [b.start for b in batches] == list(range(0, 21, 2))
    monkeypatch.setattr(model, "_workers", lambda: 1)
    alone = list(model.stream(source, iter(driving), smoothing=0.6, batch_size=2))
    for a, b in zip(batches, alone):
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.driving_keypoints, b.driving_keypoints)


def test_the_workers_read_at_most_one_batch_beyond_their_own(tiny_model):
    """Two workers and one queued batch: when a batch is handed over, at most three more
    batches' frames have been read, so a long clip's memory stays flat."""
    rng = np.random.default_rng(7)
    source = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    frame = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    read = []

    def frames():
        for i in range(40):
            read.append(i)
            yield frame

    assert tiny_model._workers() == 2
    ahead = [len(read) - (b.start + len(b.frames)) for b in tiny_model.stream(source, frames(), batch_size=2)]
    assert len(ahead) == 20 and max(ahead) <= 3 * 2 and max(ahead[:10]) >= 2 * 2


def test_a_failing_batch_in_the_workers_raises_and_a_closed_stream_stops_them(tiny_model):
    import threading

    from fomm_space.errors import InputError

    rng = np.random.default_rng(6)
    source = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(12)]
    frames[7] = np.zeros((64, 64), np.float32) + 2.0  # not an RGB frame
    with pytest.raises(InputError, match="driving frame"):
        list(tiny_model.stream(source, iter(frames), batch_size=2))
    stream = tiny_model.stream(source, iter(frames[:6] * 20), batch_size=2)
    next(stream)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("fomm-engine")]
