"""Paste-back into the whole photo, and the face upscaler."""

from pathlib import Path

import numpy as np
import pytest

from fomm_space.crop import Box, crop
from fomm_space.errors import InputError
from fomm_space.compose.paste import PasteBack, upscale


def gradient_photo(h=300, w=400):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 100)], axis=-1).astype(np.uint8)


def test_outside_the_box_is_the_photo_and_inside_is_the_face():
    photo = gradient_photo()
    box = Box(100, 50, 260, 210)
    face = crop(photo, box, (64, 64))
    face[24:40, 24:40] = 255  # what the animation changed
    out = PasteBack(photo, box)(face)
    assert out.shape == photo.shape
    mask = np.ones(photo.shape[:2], bool)
    mask[50:210, 100:260] = False
    assert np.array_equal(out[mask], photo[mask])
    centre = out[120:140, 170:190].astype(int)
    assert np.abs(centre - photo[120:140, 170:190]).mean() > 20  # the face is there


def test_the_crop_pasted_back_gives_the_photo_again():
    photo = gradient_photo()
    box = Box(-40, 100, 160, 300)  # past the left and bottom borders
    face = crop(photo, box, (200, 200))
    out = PasteBack(photo, box)(face)
    assert np.abs(out.astype(int) - photo).max() <= 2


def test_colour_is_matched_at_the_seam_and_the_edge_is_soft():
    photo = np.full((200, 200, 3), 100, np.uint8)
    box = Box(50, 50, 150, 150)
    brighter = np.full((100, 100, 3), 160, np.uint8)  # same picture, 60 brighter
    out = PasteBack(photo, box)(brighter).astype(int)
    assert np.abs(out - 100).max() <= 1  # the offset is taken out
    mask = PasteBack(photo, box).mask[:, :, 0]
    assert mask[0, 0] < 0.01 and mask[50, 50] == 1.0  # 0 at the box edge, 1 inside
    assert np.abs(np.diff(mask[50])).max() < 0.15  # a soft edge, no step


def test_large_photos_are_scaled_to_1920():
    photo = np.zeros((2400, 3200, 3), np.uint8)
    paste = PasteBack(photo, Box(1000, 800, 1800, 1600))
    assert paste.size == (1440, 1920)
    assert paste(np.zeros((64, 64, 3), np.uint8)).shape == (1440, 1920, 3)


@pytest.mark.parametrize("method", ["bicubic", "lanczos"])
def test_bicubic_and_lanczos_are_sharper_than_bilinear(method):
    face = np.zeros((64, 64, 3), np.uint8)
    face[:, 32:] = 255
    face[::8] = 128

    def sharpness(img):
        return np.abs(np.diff(img.astype(float), axis=1)).max()

    big, big_b = upscale(face, (256, 256), method), upscale(face, (256, 256), "bilinear")
    assert big.shape == big_b.shape == (256, 256, 3)
    assert sharpness(big) > 1.3 * sharpness(big_b)
    with pytest.raises(InputError, match="upscale"):
        upscale(face, (128, 128), "nearest")


def test_bicubic_the_default_is_within_42_db_of_lanczos():
    """On the example face enlarged 3.4x, both sharpened: 43.2 dB (50.4 dB unsharpened)."""
    from PIL import Image

    from fomm_space.options import DEFAULTS

    assert DEFAULTS.upscale == "bicubic" and PasteBack(gradient_photo(), Box(0, 0, 64, 64)).method == "bicubic"
    face = np.asarray(Image.open(Path(__file__).resolve().parents[2] / "examples" / "face.png").convert("RGB"))
    a, b = upscale(face, (864, 864), "bicubic"), upscale(face, (864, 864), "lanczos")
    mse = np.mean((a.astype(float) - b) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) >= 42


@pytest.mark.parametrize("method", ["bicubic", "lanczos"])
@pytest.mark.parametrize("side", [400, 520, 960, 1440])
def test_the_sharpening_blur_made_before_the_enlargement_is_54_db_from_blurring_after(method, side):
    """The unsharp mask's blur is made on the frame at its own size and enlarged (a fifth
    of the time on a 960-pixel box): the sharpened face is 55-59 dB from the one sharpened
    with a blur of the enlarged frame, and as sharp within 3%."""
    import cv2
    from PIL import Image

    from fomm_space.compose.paste import SHARPEN

    face = np.asarray(Image.open(Path(__file__).resolve().parents[2] / "examples" / "face.png").convert("RGB"))
    face = cv2.resize(face, (256, 256), interpolation=cv2.INTER_AREA)
    kernel = cv2.INTER_CUBIC if method == "bicubic" else cv2.INTER_LANCZOS4
    big = cv2.resize(face, (side, side), interpolation=kernel)
    before = cv2.addWeighted(big, 1 + SHARPEN, cv2.GaussianBlur(big, (0, 0), max(1.0, side / 512)), -SHARPEN, 0.0)
    now = upscale(face, (side, side), method)
    assert 10 * np.log10(255 ** 2 / np.mean((now.astype(float) - before) ** 2)) >= 54

    def sharpness(img):
        return np.abs(np.diff(img.astype(float), axis=1)).mean()

    assert abs(sharpness(now) / sharpness(before) - 1) < 0.03 and sharpness(now) > 1.05 * sharpness(big)


@pytest.mark.parametrize("box", [Box(60, 40, 300, 280), Box(-50, -30, 150, 170), Box(250, 150, 450, 350)])
def test_only_the_soft_edge_is_blended_and_the_middle_is_the_face(box):
    """The paste-back blends the four strips of the soft edge and copies the middle:
    the same, to rounding, as blending the whole box with its mask."""
    import cv2

    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 2)
    face = cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), (0, 0), 1)
    paste = PasteBack(photo, box)
    patch = upscale(face, paste.box_size)[paste.inner].astype(np.float64)
    seam = paste.seam > 0
    patch = np.clip(np.round(patch + paste.background[seam].mean(axis=0) - patch[seam].mean(axis=0)), 0, 255)
    expected = photo.astype(np.float64)
    expected[paste.rows, paste.cols] = paste.background + (patch - paste.background) * paste.mask
    out = paste(face)
    assert np.abs(out - expected).max() <= 1.01
    middle = out[paste.rows, paste.cols][paste.middle]
    assert middle.size > 0.4 * patch.size and np.array_equal(middle, patch[paste.middle])


def before_opencv(photo, box, face):
    """Paste-back as it was computed before OpenCV (PIL's Lanczos and unsharp mask,
    float32 blend): the reference the faster code is held to."""
    from PIL import Image, ImageFilter

    paste = PasteBack(photo, box)
    h, w = paste.box_size
    img = Image.fromarray(face).resize((w, h), Image.LANCZOS)
    if h > 1.5 * face.shape[0]:
        img = img.filter(ImageFilter.UnsharpMask(radius=max(1.0, h / face.shape[0] / 2), percent=60, threshold=2))
    patch = np.asarray(img)[paste.inner].astype(np.float32)
    background = paste.background.astype(np.float32)
    seam = paste.seam > 0
    patch += background[seam].mean(axis=0) - patch[seam].mean(axis=0)
    out = photo.copy()
    out[paste.rows, paste.cols] = np.clip(background + (patch - background) * paste.mask + 0.5, 0, 255)
    return out


@pytest.mark.parametrize("side", [200, 520])  # 256 -> 200 (no sharpening), 256 -> 520 (sharpened)
def test_the_opencv_paste_back_matches_the_earlier_one(side):
    from PIL import Image

    from fomm_space.frames import resize

    face = np.asarray(Image.open(Path(__file__).resolve().parents[2] / "examples" / "face.png").convert("RGB"))
    photo = resize(np.concatenate([face, face[:, ::-1]], axis=1), (600, 1000))
    box = Box(300, 40, 300 + side, 40 + side)
    moved = np.roll(face, 3, axis=1)  # "animated"
    new, old = PasteBack(photo, box)(moved), before_opencv(photo, box, moved)
    mse = np.mean((new.astype(float) - old) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) >= 50  # measured: 55.4 and 52.3 dB (OpenCV's Lanczos kernel)


@pytest.mark.parametrize("box", [Box(60, 30, 330, 300), Box(-40, -20, 200, 220), Box(250, 150, 460, 360)])
@pytest.mark.parametrize("method", ["bicubic", "lanczos", "bilinear"])
def test_the_paste_back_in_place_is_the_plain_opencv_sequence_bit_for_bit(box, method):
    """Upscaled into the photo's own array through reused buffers, the colour match
    looked up from a table: the bytes of upscale, cv2.add of the offset (saturating)
    and the blend, each into arrays of their own; frame after frame, also where the
    offset saturates."""
    import cv2

    rng = np.random.default_rng(1)
    photo = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 2)
    paste = PasteBack(photo, box, method=method)
    out = photo.copy()
    for i in range(3):
        face = cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), (0, 0), 1)
        face = np.clip(face.astype(int) + (120 if i == 1 else -120 if i == 2 else 0), 0, 255).astype(np.uint8)
        patch = np.ascontiguousarray(upscale(face, paste.box_size, method)[paste.inner])
        offset = paste.background_seam - np.array(cv2.mean(patch, mask=paste.seam)[:3])
        patch = cv2.add(patch, (*offset, 0.0))
        expected = photo.copy()
        region = expected[paste.rows, paste.cols]
        region[paste.middle] = patch[paste.middle]
        for strip, weight, rest, background in paste._strips:
            region[strip] = cv2.blendLinear(np.ascontiguousarray(patch[strip]), background, weight, rest)
        assert np.array_equal(paste(face, out=out), expected)
        assert np.array_equal(paste(face), expected)
