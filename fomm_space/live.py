"""Live animation: the photo moved by camera frames that arrive one at a time.

The engine's own steps at batch 1 (latency before throughput): the photo is cropped,
its keypoints found and its encoding done once; each camera frame is cropped around the
face, its keypoints found (and smoothed over time), and the photo moved by the motion
since the reference frame. The composition (paste-back, the AI mark) is the video
path's. A caller that falls behind drops frames: :meth:`LiveSession.push` takes the
frame it is given, and keeps no queue.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .crop import Box, center_box, crop, face_square, largest
from .errors import InputError
from .faces import FaceDetector, face_detector, face_precision, normalize_landmarks
from .frames import to_uint8
from .model import AnimationModel
from .motion import Keypoints, movement_scale
from .options import LIVE_DEFAULTS, AnimationOptions, check_options
from .compose.overlay import stamp_ai_mark
from .pipeline import photo_crop
from .smoothing import KeypointSmoother

REDETECT_EVERY = 30  # camera frames between two checks of where the face is
MOVE_IOU = 0.6       # the crop square moves only when the face's square overlaps it less
DRIFT = 0.35         # mean keypoint distance from the crop's centre (of 1) that calls a check now


def pose_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two (K, 2) keypoint sets are in pose: sum of squared differences
    once each is centred and scaled to unit hull area (inf where one is degenerate)."""
    na, nb = normalize_landmarks(a), normalize_landmarks(b)
    if na is None or nb is None:
        return math.inf
    return float(((na - nb) ** 2).sum())


class LiveSession:
    """Animates a photo by camera frames pushed one at a time.

    Args:
        model: the engine (either family).
        photo: (H, W, 3) uint8 RGB, the photo to animate.
        options: ``relative``, ``adapt_scale``, ``smoothing``, ``crop``, ``crop_scale``,
            ``paste_back``, ``upscale``, ``ai_mark`` and ``avd`` apply, as in the video path;
            default :data:`~fomm_space.options.LIVE_DEFAULTS` (smoothing on).
        detector: faces in photo and camera (default: face-alignment on the model's
            device); needed only with ``options.crop``.
        fps: the camera's frame rate, for the keypoint filter.
        redetect_every: camera frames between two checks of where the face is.

    The first frame pushed (and the first after :meth:`reset`) is the reference: the
    photo moves by the motion since it. The camera face is found then, and followed:
    checked again every ``redetect_every`` frames, or at once when the keypoints drift
    from the crop's centre, in a background thread, so a slow detector never stalls a
    frame; the crop square moves only when the face has clearly moved.
    """

    def __init__(self, model: AnimationModel, photo: np.ndarray, options: AnimationOptions = LIVE_DEFAULTS, *,
                 detector: FaceDetector | None = None, fps: float = 25.0, redetect_every: int = REDETECT_EVERY):
        check_options(options)
        model.check_avd(options.avd)
        if not (isinstance(photo, np.ndarray) and photo.ndim == 3 and photo.shape[2] == 3 and photo.dtype == np.uint8):
            raise InputError("The photo must be an (H, W, 3) uint8 RGB array.")
        if redetect_every < 1:
            raise InputError(f"redetect_every must be at least 1, got {redetect_every}.")
        if detector is None and options.crop:
            detector = face_detector(str(model.device), options.face_detector, face_precision(model.dtype))
        self.model, self.options, self.fps, self.redetect_every = model, options, fps, redetect_every
        self._detector = detector
        self.photo_box, self.source, self._paste, _ = photo_crop(photo, options, detector, model.size)
        self._prepared = model.prepare_source(self.source)
        self._source_kp = self._prepared.keypoints_array
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="live-faces") if options.crop else None
        self._lock = threading.Lock()
        self._times: collections.deque[tuple[float, float]] = collections.deque(maxlen=30)
        self.frames = 0
        self.reference_frame: int | None = None
        self.box: Box | None = None
        self._reset_state()

    # -- the session's controls ------------------------------------------------------

    def _reset_state(self) -> None:
        self._reference: Keypoints | None = None
        self._scale = 1.0
        self._pending: Future | None = None
        self._since_check = 0
        self._frame_shape: tuple[int, ...] | None = None
        self._matching: dict | None = None
        self._smoother = KeypointSmoother(self.options.smoothing, self.fps) if self.options.smoothing > 0 else None
        self.box = None

    def reset(self) -> None:
        """Take the next frame as the reference, and find the camera face again."""
        with self._lock:
            self._reset_state()

    def match_pose(self, frames: int | None = None) -> None:
        """Among the next ``frames`` frames (default: one second's), the one whose pose
        is closest to the photo's becomes the reference."""
        with self._lock:
            self._matching = {"left": max(1, frames or round(self.fps)), "best": math.inf}

    # -- frames ----------------------------------------------------------------------

    def push(self, frame: np.ndarray) -> np.ndarray:
        """One camera frame, (H, W, 3) uint8 RGB, to the animated frame: (h, w, 3) uint8
        RGB at the model's size, or the whole photo with paste-back."""
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
                and frame.dtype == np.uint8):
            raise InputError("A camera frame must be an (H, W, 3) uint8 RGB array.")
        start = time.perf_counter()
        with self._lock:
            model, options = self.model, self.options
            face = crop(frame, self._follow(frame), model.size)
            kp = model.detect_keypoints([face])
            if self._smoother is not None:
                kp = self._smoother(kp)
            self._watch_drift(kp)
            self._choose_reference(kp)
            kp_new = model.transfer_keypoints(self._prepared, kp, self._reference, relative=options.relative,
                                              adapt_scale=options.adapt_scale, scale=self._scale, avd=options.avd)
            out = model.generate(self._prepared, kp_new)
            animated = to_uint8(out.permute(0, 2, 3, 1).float().cpu().numpy())[0]
            self.frames += 1
        shown = self._paste(animated) if self._paste is not None else animated
        result = stamp_ai_mark(shown) if options.ai_mark else shown
        self._times.append((time.monotonic(), time.perf_counter() - start))
        return result

    def _set_reference(self, kp: Keypoints) -> None:
        self._reference = {k: v.clone() for k, v in kp.items()}
        self.reference_frame = self.frames
        relative = self.options.relative and self.options.adapt_scale
        self._scale = movement_scale(self._prepared.keypoints, self._reference) if relative else 1.0

    def _choose_reference(self, kp: Keypoints) -> None:
        if self._reference is None:
            self._set_reference(kp)
        if self._matching is None:
            return
        distance = pose_distance(kp["value"][0].float().cpu().numpy(), self._source_kp)
        if distance < self._matching["best"]:
            self._matching["best"] = distance
            self._set_reference(kp)
        self._matching["left"] -= 1
        if self._matching["left"] <= 0:
            self._matching = None

    # -- the camera face ---------------------------------------------------------------

    def _square(self, faces: list[Box]) -> Box | None:
        """The crop square of the face to follow: the one overlapping the current
        square most, else the largest."""
        if not faces:
            return None
        face = max(faces, key=lambda b: face_square(b, self.options.crop_scale).iou(self.box)) \
            if self.box is not None else largest(faces)
        return face_square(face, self.options.crop_scale)

    def _follow(self, frame: np.ndarray) -> Box:
        height, width = frame.shape[:2]
        if not self.options.crop:
            return center_box(height, width)
        if frame.shape != self._frame_shape:  # the first frame, or the camera changed
            self._frame_shape, self.box = frame.shape, None
        if self.box is None:  # found now, before the first frame is animated
            self.box = self._square(self._detector.detect(frame)) or center_box(height, width)
            self._since_check = 0
            return self.box
        if self._pending is not None and self._pending.done():
            try:
                found = self._square(self._pending.result())
            except Exception:  # noqa: BLE001 - a failed check keeps the square; the next one may do better
                found = None
            self._pending = None
            if found is not None and found.iou(self.box) < MOVE_IOU:
                self.box = found
        self._since_check += 1
        if self._pending is None and self._since_check >= self.redetect_every:
            self._since_check = 0
            self._pending = self._pool.submit(self._detector.detect, frame.copy())
        return self.box

    def _watch_drift(self, kp: Keypoints) -> None:
        if self.options.crop and float(kp["value"][0].float().mean(dim=0).norm()) > DRIFT:
            self._since_check = max(self._since_check, self.redetect_every)

    # -- figures -----------------------------------------------------------------------

    @property
    def ms_per_frame(self) -> float:
        """Mean server time of the last 30 frames, in milliseconds (nan before any)."""
        return 1000 * float(np.mean([t for _, t in self._times])) if self._times else math.nan

    @property
    def frames_per_second(self) -> float:
        """Frames pushed per second over the last 30 (nan before two)."""
        if len(self._times) < 2:
            return math.nan
        span = self._times[-1][0] - self._times[0][0]
        return (len(self._times) - 1) / span if span > 0 else math.nan

    def close(self) -> None:
        """Stop the background face checks."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
