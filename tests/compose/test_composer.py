"""The Composer gives, frame after frame from reused arrays, what the separate steps give."""

import numpy as np
import pytest

from fomm_space.compose import Composer, PasteBack, draw_keypoints, stamp_ai_mark
from fomm_space.crop import Box


@pytest.mark.parametrize("box", [Box(100, 50, 260, 210), Box(250, 180, 410, 340)])  # the second covers the mark
@pytest.mark.parametrize("mark", [True, False])
def test_each_frame_is_paste_then_mark_whatever_came_before(box, mark):
    rng = np.random.default_rng(0)
    photo = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    paste = PasteBack(photo, box)
    composer = Composer(photo[:64, :64], None, paste, mark)
    for _ in range(3):
        face = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
        expected = paste(face)
        expected = stamp_ai_mark(expected) if mark else expected
        assert np.array_equal(composer.frame(face), expected)


def test_without_paste_back_the_frame_is_the_result_marked():
    rng = np.random.default_rng(1)
    composer = Composer(np.zeros((64, 64, 3), np.uint8), None, None, True)
    for _ in range(2):
        face = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
        assert np.array_equal(composer.frame(face), stamp_ai_mark(face))
        assert np.array_equal(face, face.copy())  # the result itself is left alone


def test_the_panel_is_source_driving_result_with_their_keypoints():
    rng = np.random.default_rng(2)
    source, driving, result = ((rng.random((48, 48, 3)) * 255).astype(np.uint8) for _ in range(3))
    kp = [rng.uniform(-0.9, 0.9, (10, 2)) for _ in range(3)]
    composer = Composer(source, kp[0], None, False)
    for shift in (0.0, 0.1):
        panel = composer.panel(driving, kp[1] + shift, result, kp[2] - shift)
        expected = np.concatenate([draw_keypoints(source, kp[0]), draw_keypoints(driving, kp[1] + shift),
                                   draw_keypoints(result, kp[2] - shift)], axis=1)
        assert np.array_equal(panel, expected)


@pytest.mark.parametrize("method, side", [("bicubic", 160), ("lanczos", 160), ("lanczos", 48), ("bilinear", 160)])
def test_the_device_composer_matches_the_cpu_one(method, side):
    """The tensor path (for GPUs; run here on the CPU) gives the CPU path's frames within
    40 dB: torch's bicubic for OpenCV's bicubic and Lanczos, the same colour match, blend and mark."""
    import torch

    from fomm_space.compose.tensor import TensorComposer

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:300, 0:400]
    photo = np.stack([xx * 255 // 399, yy * 255 // 299, (xx + yy) % 256], axis=-1).astype(np.uint8)
    paste = PasteBack(photo, Box(250, 150, 250 + side, 150 + side), method=method)
    cpu = Composer(photo[:64, :64], None, paste, True)
    device = TensorComposer(paste, True, "cpu")
    low = rng.random((3, 3, 8, 8), dtype=np.float32)
    faces = torch.nn.functional.interpolate(torch.from_numpy(low), size=(64, 64), mode="bicubic").clamp(0, 1)
    got = device(faces)
    assert got.shape == (3, 300, 400, 3) and got.dtype == np.uint8
    for i in range(3):
        expected = cpu.frame((faces[i].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
        mse = np.mean((got[i].astype(float) - expected) ** 2)
        assert 10 * np.log10(255 ** 2 / mse) >= 40
        outside = np.ones((300, 400), bool)
        outside[150:150 + side, 250:250 + side] = False
        outside[expected.shape[0] - 40:, expected.shape[1] - 200:] = False  # the mark's corner
        assert np.array_equal(got[i][outside], photo[outside])
