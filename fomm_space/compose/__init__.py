"""Composition: the engine's frames made into the frames a user sees.

The model's (h, w, 3) uint8 results are pasted back into the photo (:mod:`.paste`),
marked "AI-generated", and shown beside the source and driving crops with their
keypoints (:mod:`.overlay`); a :class:`Composer` (:mod:`.composer`) does all of it for
one run, and :mod:`.tensor` the same on a GPU where the frames are.
"""

from .composer import Composer
from .overlay import draw_keypoints, stamp_ai_mark
from .paste import PasteBack

__all__ = ["Composer", "PasteBack", "draw_keypoints", "stamp_ai_mark"]
