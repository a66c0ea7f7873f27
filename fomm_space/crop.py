"""Cropping frames to the square the model works on."""

from __future__ import annotations

import numpy as np


def center_square(frame: np.ndarray) -> np.ndarray:
    """The largest centred square of an (H, W, C) frame (a view, no copy)."""
    h, w = frame.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return frame[top:top + side, left:left + side]
