"""The :class:`Composer`: the frames a user sees of one run, from the engine's results.

What depends on the photo alone is made once and the output arrays are reused, so that a
frame costs the upscale and a few uint8 passes (OpenCV), not frame-sized allocations.
"""

from __future__ import annotations

import numpy as np

from .overlay import AI_MARK, dot_keypoints, draw_keypoints, keypoint_colors, mark_region, stamp_ai_mark
from .paste import PasteBack


class Composer:
    """The shown frame and the keypoint panel of each result of one run.

    Args:
        source: the (h, w, 3) uint8 source crop the model animated.
        source_kp: its (K, 2) keypoints in [-1, 1] (needed for :meth:`panel`).
        paste: the paste-back into the whole photo, or ``None`` (the result as it is).
        mark: stamp :data:`~.overlay.AI_MARK` on the shown frames.

    The arrays :meth:`frame` and :meth:`panel` return are reused by the next call of
    the same method: write or copy them before asking for the next frame.
    """

    def __init__(self, source: np.ndarray, source_kp: np.ndarray | None, paste: PasteBack | None, mark: bool):
        self.paste = paste
        self.mark = mark
        self._frame = paste.photo.copy() if paste is not None else None
        self._panel: np.ndarray | None = None
        self._source = source
        self._source_kp = source_kp
        self._colors = keypoint_colors(len(source_kp)) if source_kp is not None else None

    def frame(self, result: np.ndarray) -> np.ndarray:
        """The frame shown for an (h, w, 3) uint8 result: (H, W, 3) uint8 RGB, the photo's
        size with paste-back, else the result's."""
        if self.paste is None:
            if self._frame is None or self._frame.shape != result.shape:
                self._frame = np.empty_like(result)
            np.copyto(self._frame, result)
            out = self._frame
        else:
            out = self._frame
            if self.mark:  # the last frame's mark, where the box does not cover it, is undone first
                rows, cols = mark_region(*out.shape[:2])
                out[rows, cols] = self.paste.photo[rows, cols]
            self.paste(result, out=out)
        return stamp_ai_mark(out, AI_MARK, in_place=True) if self.mark else out

    def panel(self, driving: np.ndarray, driving_kp: np.ndarray, result: np.ndarray,
              result_kp: np.ndarray) -> np.ndarray:
        """Source | driving | result side by side ((h, 3w, 3) uint8 RGB), each with its
        keypoints ((K, 2) in [-1, 1]) as coloured dots; the source part is drawn once."""
        h, w = self._source.shape[:2]
        if self._panel is None:
            self._panel = np.empty((h, 3 * w, 3), np.uint8)
            self._panel[:, :w] = draw_keypoints(self._source, self._source_kp, self._colors)
        for i, (image, kp) in enumerate(((driving, driving_kp), (result, result_kp)), start=1):
            part = self._panel[:, i * w:(i + 1) * w]
            np.copyto(part, image)
            dot_keypoints(part, kp, self._colors)
        return self._panel
