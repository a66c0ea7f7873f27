"""Converting user images to the float RGB arrays the model works on."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def as_float_rgb(image: np.ndarray, *, what: str = "image") -> np.ndarray:
    """Return ``image`` as float32 (H, W, 3) RGB in [0, 1].

    Accepts (H, W) grey, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA (alpha dropped);
    dtype uint8, uint16, bool or float already in [0, 1].
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"The {what} must be an H x W x 3 RGB array, got shape {arr.shape}.")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.bool_:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise InputError(f"The {what} holds NaN or infinite values.")
        lo, hi = float(out.min()), float(out.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise InputError(f"The {what} is float with values in [{lo:.3g}, {hi:.3g}]; "
                             "floats must be in [0, 1] (or pass uint8).")
        out = np.clip(out, 0.0, 1.0)
    else:
        raise InputError(f"The {what} has dtype {arr.dtype}; use uint8, uint16 or float in [0, 1].")
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif out.shape[2] == 4:
        out = out[:, :, :3]
    return np.ascontiguousarray(out)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8, rounding to nearest."""
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
