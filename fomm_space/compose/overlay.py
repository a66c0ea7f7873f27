"""What is drawn on frames: the keypoints the model tracked, and the AI-generated mark."""

from __future__ import annotations

import colorsys
import functools

import numpy as np


def keypoint_colors(num_kp: int) -> np.ndarray:
    """(K, 3) uint8 RGB colours, one per keypoint, evenly spread in hue."""
    return np.array([[round(255 * c) for c in colorsys.hsv_to_rgb(i / num_kp, 0.9, 1.0)]
                     for i in range(num_kp)], dtype=np.uint8)


def to_pixels(keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """(K, 2) keypoints (x, y) in [-1, 1] -> (K, 2) pixel coordinates (x, y)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    return np.stack([(kp[:, 0] + 1) * (width - 1) / 2, (kp[:, 1] + 1) * (height - 1) / 2], axis=1)


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, colors: np.ndarray | None = None,
                   radius: float | None = None) -> np.ndarray:
    """Return a copy of an (H, W, 3) uint8 image with each keypoint as a filled dot.

    ``keypoints`` are (K, 2) in [-1, 1]; the dot radius defaults to 1.5% of the
    image's smaller side, with a dark rim so dots show on light and dark images.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    dot_keypoints(out, keypoints, colors, radius)
    return out


def dot_keypoints(image: np.ndarray, keypoints: np.ndarray, colors: np.ndarray | None = None,
                  radius: float | None = None) -> None:
    """:func:`draw_keypoints` in place, on an (H, W, 3) uint8 array."""
    h, w = image.shape[:2]
    colors = keypoint_colors(len(keypoints)) if colors is None else colors
    r = radius if radius is not None else max(2.0, 0.015 * min(h, w))
    for (x, y), color in zip(to_pixels(keypoints, h, w), colors):
        y0, y1 = max(0, int(y - r - 2)), min(h, int(y + r + 3))
        x0, x1 = max(0, int(x - r - 2)), min(w, int(x + r + 3))
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        d2 = (yy - y) ** 2 + (xx - x) ** 2
        patch = image[y0:y1, x0:x1]
        patch[d2 <= (r + 1) ** 2] = (0, 0, 0)
        patch[d2 <= r ** 2] = color


AI_MARK = "AI-generated"


@functools.lru_cache(maxsize=16)
def mark_layer(height: int, width: int, text: str) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """(top, left), alpha (h, w, 1) and colour (h, w, 3) of the mark for a frame size."""
    from PIL import Image, ImageDraw, ImageFont

    size = max(8, round(0.06 * min(height, width)))
    font = ImageFont.load_default(size=size)
    pad = max(2, size // 4)
    left, top, right, bottom = font.getbbox(text)
    w, h = min(width, right - left + 2 * pad), min(height, bottom - top + 2 * pad)
    colour = Image.new("RGB", (w, h), (0, 0, 0))
    alpha = Image.new("L", (w, h), 150)  # a translucent dark plate
    ImageDraw.Draw(colour).text((pad - left, pad - top), text, font=font, fill=(255, 255, 255))
    ImageDraw.Draw(alpha).text((pad - left, pad - top), text, font=font, fill=255)
    margin = max(1, size // 3)
    corner = (max(0, height - h - margin), max(0, width - w - margin))
    return corner, np.asarray(alpha, np.float32)[:, :, None] / 255.0, np.asarray(colour, np.float32)


def stamp_ai_mark(frame: np.ndarray, text: str = AI_MARK, *, in_place: bool = False) -> np.ndarray:
    """An (H, W, 3) uint8 frame with ``text`` on a dark plate in the lower right: a copy,
    or with ``in_place`` the frame itself."""
    out = frame if in_place else np.array(frame, dtype=np.uint8, copy=True)
    (top, left), alpha, colour = mark_layer(out.shape[0], out.shape[1], text)
    h, w = alpha.shape[:2]
    region = out[top:top + h, left:left + w].astype(np.float32)
    out[top:top + h, left:left + w] = (region * (1 - alpha) + colour * alpha + 0.5).astype(np.uint8)
    return out


def mark_region(height: int, width: int, text: str = AI_MARK) -> tuple[slice, slice]:
    """(rows, columns) that :func:`stamp_ai_mark` changes in a ``height`` x ``width`` frame."""
    (top, left), alpha, _ = mark_layer(height, width, text)
    return slice(top, top + alpha.shape[0]), slice(left, left + alpha.shape[1])
