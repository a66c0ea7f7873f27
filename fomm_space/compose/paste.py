"""Putting the animated face back into the full photo: upscale, colour-match, feather."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..crop import Box
from ..errors import InputError
from ..frames import resize

UPSCALERS = ("bicubic", "lanczos", "bilinear")
MAX_SIDE = 1920  # longer side of a pasted-back video; larger photos are scaled down to it
SHARPEN = 0.6    # the unsharp mask's amount after a bicubic or Lanczos upscale
_LEVELS = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)  # every value, in each channel


def _ramp(length: int, width: float) -> np.ndarray:
    """1 in the middle, a smooth (cosine) fall to 0 over ``width`` pixels at both ends."""
    pos = np.arange(length, dtype=np.float32) + 0.5
    dist = np.minimum(pos, length - pos)
    t = np.clip(dist / max(width, 1.0), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


@lru_cache(maxsize=64)
def _sampled_sigma(sigma: float) -> float:
    """The sigma whose sampled Gaussian kernel (OpenCV's, for uint8) spreads as far
    (variance) as a continuous Gaussian of ``sigma`` does: below about one pixel the
    sampled kernel is narrower than its sigma says."""
    import cv2

    def variance(s: float) -> float:
        k = cv2.getGaussianKernel(int(round(s * 6 + 1)) | 1, s)[:, 0]
        return float((k * (np.arange(k.size) - k.size // 2) ** 2).sum())

    low, high = sigma, 2 * sigma
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (mid, high) if variance(mid) < sigma ** 2 else (low, mid)
    return (low + high) / 2


def upscale(frame: np.ndarray, size: tuple[int, int], method: str = "bicubic", *,
            out: np.ndarray | None = None, part: tuple[slice, slice] | None = None,
            scratch: list[np.ndarray] | None = None) -> np.ndarray:
    """Resize an (h, w, 3) uint8 frame to (height, width).

    ``bicubic`` (the default): OpenCV's bicubic resampling, then a light unsharp mask
    where the frame grows by more than 1.5x (sharp edges, no ringing halos: 60% of the
    difference from a Gaussian blur of sigma = half the growth, in enlarged pixels; the
    blur is made before the enlargement). ``lanczos``: the same
    with OpenCV's 8x8 Lanczos kernel, far slower than bicubic for a picture hard to tell
    from it (docs/benchmarks.md). ``bilinear``:
    anti-aliased bilinear (soft). Frames that shrink are area-averaged (OpenCV's
    kernels do not filter against aliasing).

    With ``out``, the result's ``part`` (rows, columns; default all of it) is written
    there (a (rows, columns, 3) uint8 array or view) and returned; ``scratch``, a list
    kept by the caller, holds the in-between arrays from one call to the next (no
    frame-sized allocation per frame).
    """
    if method not in UPSCALERS:
        raise InputError(f"upscale must be one of {', '.join(UPSCALERS)}, got {method!r}.")
    part = part or (slice(None), slice(None))
    if method == "bilinear" or tuple(size) == frame.shape[:2]:
        img = resize(frame, size)[part]
        if out is None:
            return img
        out[...] = img
        return out
    import cv2

    scratch = [] if scratch is None else scratch
    shape = (size[0], size[1], 3)
    if len(scratch) != 3 or scratch[0].shape != shape or scratch[2].shape != frame.shape:
        scratch[:] = [np.empty(shape, np.uint8), np.empty(shape, np.uint8), np.empty(frame.shape, np.uint8)]
    big, blurred, small_blurred = scratch
    frame = np.ascontiguousarray(frame)
    shrinking = size[0] < frame.shape[0]
    kernel = cv2.INTER_CUBIC if method == "bicubic" else cv2.INTER_LANCZOS4
    cv2.resize(frame, (size[1], size[0]), dst=big, interpolation=cv2.INTER_AREA if shrinking else kernel)
    if out is None:
        out = np.empty_like(big[part])
    growth = size[0] / frame.shape[0]
    if growth > 1.5:
        # The blur of the enlarged frame, made at the frame's own size (sigma scaled down,
        # as wide as the continuous one) and enlarged bicubically: close to blurring the
        # enlarged frame (a test), at a fraction of its cost.
        cv2.GaussianBlur(frame, (0, 0), _sampled_sigma(round(max(1.0, growth / 2) / growth, 3)), dst=small_blurred)
        cv2.resize(small_blurred, (size[1], size[0]), dst=blurred, interpolation=cv2.INTER_CUBIC)
        cv2.addWeighted(big[part], 1.0 + SHARPEN, blurred[part], -SHARPEN, 0.0, dst=out)
    else:
        out[...] = big[part]
    return out


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
    in the middle and falls smoothly to 0 at the box edge. Everything that depends on
    the photo alone (mask, seam, background) is made once; a frame costs the upscale
    and three OpenCV passes in uint8.
    """

    def __init__(self, photo: np.ndarray, box: Box, *, feather: float = 0.12, method: str = "bicubic",
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
        self.background = np.ascontiguousarray(photo[self.rows, self.cols])
        # Where the mask is 1 (the box's middle) the face is copied; it is blended only on
        # the soft edge: four strips around that middle (empty where the box is clipped).
        rows_1 = np.flatnonzero(self.mask.max(axis=1)[:, 0] >= 1.0)
        cols_1 = np.flatnonzero(self.mask.max(axis=0)[:, 0] >= 1.0)
        ph, pw = self.mask.shape[:2]
        if rows_1.size and cols_1.size:
            r0, r1, c0, c1 = rows_1[0], rows_1[-1] + 1, cols_1[0], cols_1[-1] + 1
        else:
            r0 = r1 = c0 = c1 = 0
        self.middle = (slice(r0, r1), slice(c0, c1))
        strips = [(slice(0, r0), slice(0, pw)), (slice(r1, ph), slice(0, pw)),
                  (slice(r0, r1), slice(0, c0)), (slice(r0, r1), slice(c1, pw))]
        self._strips = [(part, np.ascontiguousarray(self.mask[part][:, :, 0]),
                         np.ascontiguousarray(1.0 - self.mask[part][:, :, 0]),
                         np.ascontiguousarray(self.background[part]))
                        for part in strips if part[0].stop > part[0].start and part[1].stop > part[1].start]
        seam = (self.mask[:, :, 0] > 0.05) & (self.mask[:, :, 0] < 0.6)
        self.seam = (seam if seam.any() else np.ones_like(seam)).astype(np.uint8)
        self.background_seam = self.background[self.seam > 0].astype(np.float64).mean(axis=0)
        self._scratch: list[np.ndarray] = []  # upscale's in-between arrays, reused

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the pasted frames."""
        return self.photo.shape[:2]

    def __call__(self, face: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The photo with an (h, w, 3) uint8 animated crop pasted in: (H, W, 3) uint8.

        With ``out`` (an earlier result of this paste-back, or a copy of :attr:`photo`)
        only the box is written, in place: no frame-sized allocation.
        """
        import cv2

        out = self.photo.copy() if out is None else out
        box = out[self.rows, self.cols]  # the patch is made here, in place
        upscale(face, self.box_size, self.method, out=box, part=self.inner, scratch=self._scratch)
        offset = self.background_seam - np.array(cv2.mean(box, mask=self.seam)[:3])
        # The colour match: cv2.add of the offset (rounded, saturated at 0 and 255), made
        # on the 256 values once and looked up: the same bytes at a fifth of the time.
        cv2.LUT(box, cv2.add(_LEVELS, (*offset, 0.0)), dst=box)
        for strip, weight, rest, background in self._strips:
            box[strip] = cv2.blendLinear(np.ascontiguousarray(box[strip]), background, weight, rest)
        return out
