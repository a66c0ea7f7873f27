"""Draw the README's before/after stills for paste-back, upscaling and smoothing.

    python docs/make_figures.py

Uses the drawn example face (no model weights needed): an "animated" crop is the same
face drawn with its mouth open, as a FOMM result would look.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "examples"))

from make_examples import draw_face  # noqa: E402

from fomm_space.crop import Box, crop  # noqa: E402
from fomm_space.compose.paste import PasteBack, upscale  # noqa: E402
from fomm_space.smoothing import KeypointSmoother  # noqa: E402


def label(img: np.ndarray, text: str) -> np.ndarray:
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, 8 * len(text) + 10, 22], fill=(0, 0, 0))
    d.text((5, 5), text, fill=(255, 255, 255))
    return np.asarray(im)


def scene(**face) -> np.ndarray:
    """A 640x480 photo: a drawn face on a gradient background."""
    yy, xx = np.mgrid[0:480, 0:640]
    out = np.stack([90 + xx // 8, 140 + yy // 10, np.full_like(xx, 170)], axis=-1).astype(np.uint8)
    bg = (1, 2, 3)
    drawn = np.asarray(Image.fromarray(draw_face(background=bg, **face)).resize((320, 320), Image.NEAREST))
    region = out[100:420, 260:580]
    keep = (drawn == bg).all(axis=-1, keepdims=True)
    out[100:420, 260:580] = np.where(keep, region, drawn)
    return out


def paste_figure() -> None:
    box = Box(260, 100, 580, 420)
    photo = scene()
    animated = crop(scene(mouth=1.0, dx=6, tilt=4), box, (256, 256))  # what the model returns: the crop
    pasted = PasteBack(photo, box)(animated)
    pad = ((112, 112), (0, 0), (0, 0))
    row = np.concatenate([label(photo, "photo, 640x480"),
                          label(np.pad(animated, pad, constant_values=255), "animated crop, 256x256"),
                          label(pasted, "pasted back, 640x480")], axis=1)
    Image.fromarray(row).save(HERE / "paste_back.png", optimize=True)


def upscale_figure() -> None:
    face = draw_face(mouth=0.6)
    small = face[60:188, 64:192]  # 128x128 around the eyes and mouth
    size = (384, 384)
    lanczos, bicubic = upscale(small, size, "lanczos"), upscale(small, size, "bicubic")
    psnr = 10 * np.log10(255 ** 2 / np.mean((lanczos.astype(float) - bicubic) ** 2))
    row = np.concatenate([label(upscale(small, size, "bilinear"), "bilinear"),
                          label(lanczos, "lanczos + unsharp (before)"),
                          label(bicubic, f"bicubic + unsharp (default), {psnr:.1f} dB")], axis=1)
    print(f"upscale.png: bicubic vs lanczos {psnr:.1f} dB")
    Image.fromarray(row).save(HERE / "upscale.png", optimize=True)


def smoothing_figure() -> None:
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(100) / 25
    truth = 0.3 * torch.sin(2 * np.pi * 0.4 * t)
    noisy = truth + 0.03 * torch.randn(100, generator=gen)
    smoother = KeypointSmoother(0.7, fps=25)
    steady = torch.stack([smoother({"value": v.view(1, 1, 1)})["value"].view(()) for v in noisy])
    w, h = 600, 240
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    for series, colour in ((noisy, (220, 60, 60)), (steady, (30, 90, 200)), (truth, (160, 160, 160))):
        pts = [(10 + i * (w - 20) / 99, h / 2 - float(v) * (h - 40) / 0.8) for i, v in enumerate(series)]
        d.line(pts, fill=colour, width=2)
    d.text((12, 8), "keypoint x over 4 s: red = detected (noisy), blue = smoothed (0.7), grey = true",
           fill=(0, 0, 0))
    im.save(HERE / "smoothing.png", optimize=True)


if __name__ == "__main__":
    paste_figure()
    upscale_figure()
    smoothing_figure()
