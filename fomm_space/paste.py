"""Putting the animated face back into the full photo: upscale, colour-match, feather."""

from __future__ import annotations

import numpy as np

from .crop import Box
from .errors import InputError
from .frames import resize

UPSCALERS = ("lanczos", "bilinear")
MAX_SIDE = 1920  # longer side of a pasted-back video; larger photos are scaled down to it


def _ramp(length: int, width: float) -> np.ndarray:
    """1 in the middle, a smooth (cosine) fall to 0 over ``width`` pixels at both ends."""
    pos = np.arange(length, dtype=np.float32) + 0.5
    dist = np.minimum(pos, length - pos)
    t = np.clip(dist / max(width, 1.0), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


def upscale(frame: np.ndarray, size: tuple[int, int], method: str = "lanczos") -> np.ndarray:
    """Resize an (h, w, 3) uint8 frame to (height, width).

    ``lanczos``: Lanczos resampling, then a light unsharp mask where the frame grows
    by more than 1.5x (sharp edges, no ringing halos); ``bilinear``: anti-aliased
    bilinear (soft).
    """
    if method not in UPSCALERS:
        raise InputError(f"upscale must be one of {', '.join(UPSCALERS)}, got {method!r}.")
    if method == "bilinear" or tuple(size) == frame.shape[:2]:
        return resize(frame, size)
    from PIL import Image, ImageFilter

    img = Image.fromarray(np.ascontiguousarray(frame)).resize((size[1], size[0]), Image.LANCZOS)
    if size[0] > 1.5 * frame.shape[0]:
        img = img.filter(ImageFilter.UnsharpMask(radius=max(1.0, size[0] / frame.shape[0] / 2), percent=60,
                                                 threshold=2))
    return np.asarray(img)


class PasteBack:
    """Blends animated face crops into the photo they were cut from.

    Args:
        photo: (H, W, 3) uint8 RGB, the whole source photo.
        box: the square crop box, in photo pixels (it may reach past the border).
        feather: width of the soft edge, as a fraction of the box side.
        method: how the crop is upscaled to the box (see :func:`upscale`).
        max_side: photos with a longer side are scaled down to it first.

    Pixels outside the box are the photo's own. Inside, each frame is colour-matched to
    the photo on the soft edge (a per-channel offset) and blended with a mask that is 1
    in the middle and falls smoothly to 0 at the box edge.
    """

    def __init__(self, photo: np.ndarray, box: Box, *, feather: float = 0.12, method: str = "lanczos",
                 max_side: int = MAX_SIDE):
        h, w = photo.shape[:2]
        factor = min(1.0, max_side / max(h, w))
        if factor < 1.0:
            h, w = round(h * factor), round(w * factor)
            photo, box = resize(photo, (h, w)), box.scaled(factor)
        self.photo = photo
        self.method = method
        left, top, right, bottom = box.as_ints()
        self.box_size = (bottom - top, right - left)
        self.rows = slice(max(top, 0), min(bottom, h))
        self.cols = slice(max(left, 0), min(right, w))
        inner = (slice(self.rows.start - top, self.rows.stop - top),
                 slice(self.cols.start - left, self.cols.stop - left))
        edge = feather * min(self.box_size)
        mask = _ramp(self.box_size[0], edge)[:, None] * _ramp(self.box_size[1], edge)[None, :]
        self.inner = inner
        self.mask = mask[inner][:, :, None]
        self.background = photo[self.rows, self.cols].astype(np.float32)
        seam = (self.mask[:, :, 0] > 0.05) & (self.mask[:, :, 0] < 0.6)
        self.seam = seam if seam.any() else np.ones_like(seam)
        self.background_seam = self.background[self.seam].mean(axis=0)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the pasted frames."""
        return self.photo.shape[:2]

    def __call__(self, face: np.ndarray) -> np.ndarray:
        """The photo with an (h, w, 3) uint8 animated crop pasted in: (H, W, 3) uint8."""
        patch = upscale(face, self.box_size, self.method)[self.inner].astype(np.float32)
        patch += self.background_seam - patch[self.seam].mean(axis=0)
        blended = self.background + (patch - self.background) * self.mask
        out = self.photo.copy()
        out[self.rows, self.cols] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out
