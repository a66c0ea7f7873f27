"""Per-request animation options, with their defaults defined once for the API, CLI and UI."""

from __future__ import annotations

import math
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from .compose.paste import UPSCALERS
from .errors import InputError
from .faces import DETECTORS
from .video import ENCODERS


@dataclass(frozen=True)
class AnimationOptions:
    """What a user can choose for one animation.

    Attributes:
        relative: move the source by the driving motion relative to the reference
            frame (the authors' ``--relative``), instead of copying absolute keypoints.
        adapt_scale: scale that motion by the ratio of keypoint hull sizes
            (``--adapt_scale``); only with ``relative``.
        best_frame: index of the driving frame to use as the reference; ``None`` = the
            first frame (or the one found with ``find_best_frame``).
        find_best_frame: search the driving clip for the frame whose face pose is
            closest to the source's, and use it as the reference.
        crop: find and crop the faces in the photo and the video.
        crop_scale: size of the square crop relative to the detected face box.
        max_seconds: longest driving clip accepted; longer clips are cut (announced).
        max_frames: most driving frames animated, whatever the frame rate (a work
            budget for a shared server: a 120-fps clip reaches it 4x sooner than a
            30-fps one); longer clips are cut (announced). ``None``: no frame limit.
        batch_size: driving frames per forward pass (``None``: per device).
        ai_mark: stamp "AI-generated" on the output video.
        paste_back: put the animated face back into the whole photo, so the video has
            the photo's size and framing (where the photo is larger than the model's
            frames; photos over 1920 pixels a side are scaled down to that).
        upscale: how the face is enlarged for paste-back: "bicubic" (sharp, with a light
            unsharp mask), "lanczos" (the same with a Lanczos kernel, far slower) or
            "bilinear" (soft).
        smoothing: steadiness of the driving keypoints, 0 (off: the authors' behaviour)
            to 1 (strongest); a One-Euro filter.
        avd: TPSMM's AVD mode (animation via disentanglement: the driving pose on the
            source's identity); only for TPSMM models with an AVD network.
        face_detector: face-alignment's face detector for cropping, one of
            ``fomm_space.faces.DETECTORS``: "sfd" (S3FD, the authors' choice: small and
            turned faces anywhere in the frame), "blazeface" (close-up frontal faces,
            the frame's central square only; far faster), "blazeface-back" (the same
            for faces further away).
        encoder: the video encoder, one of ``fomm_space.video.ENCODERS``: "auto" (NVIDIA's
            NVENC where the model runs on a CUDA GPU that has it, else x264), "x264", or
            "nvenc" (x264 where NVENC can't be opened).
    """

    relative: bool = True
    adapt_scale: bool = True
    best_frame: int | None = None
    find_best_frame: bool = False
    crop: bool = True
    crop_scale: float = 1.8
    max_seconds: float = 60.0
    max_frames: int | None = None
    batch_size: int | None = None
    ai_mark: bool = True
    paste_back: bool = True
    upscale: str = "bicubic"
    smoothing: float = 0.0
    avd: bool = False
    face_detector: str = "sfd"
    encoder: str = "auto"


DEFAULTS = AnimationOptions()

LIVE_DEFAULTS = AnimationOptions(smoothing=0.5)

NAMES: dict[str, str] = {"crop_faces": "crop", "smooth": "smoothing"}
"""Other names of option fields: the page's and the web API's (``crop_faces``), the
command line's (``--smooth``)."""


def options_from(values: Mapping[str, object], base: AnimationOptions = DEFAULTS) -> AnimationOptions:
    """The options named in ``values`` (by field or by one of :data:`NAMES`) on top of
    ``base``: how the command line (its parsed flags) and the page (its controls) make
    theirs, from one list of fields. Names that are no option are left out; ``None``
    keeps ``base``'s value where the field itself is never None."""
    known = {f.name: f for f in fields(AnimationOptions)}
    chosen = {}
    for name, value in values.items():
        field = NAMES.get(name, name)
        if field in known and (value is not None or getattr(base, field) is None):
            chosen[field] = value
    return dataclasses.replace(base, **chosen)
"""The defaults of a live (webcam) session: a camera's keypoints jitter more than a
clip's, so they are smoothed by default."""


_FLAGS = ("relative", "adapt_scale", "find_best_frame", "crop", "ai_mark", "paste_back", "avd")
_NUMBERS = ("crop_scale", "max_seconds", "smoothing")
_COUNTS = ("best_frame", "max_frames", "batch_size")


def _check_kinds(options: AnimationOptions) -> None:
    """InputError for an option of the wrong kind: flags only booleans, numbers finite,
    counts whole numbers, names strings (what a hostile client might send instead)."""
    for name in _FLAGS:
        if not isinstance(getattr(options, name), (bool, np.bool_)):
            raise InputError(f"{name} must be True or False, got {_shown(getattr(options, name))}.")
    for name in _NUMBERS:
        value = getattr(options, name)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) \
                or not math.isfinite(value):
            raise InputError(f"{name} must be a finite number, got {_shown(value)}.")
    for name in _COUNTS:
        value = getattr(options, name)
        if value is not None and (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))):
            raise InputError(f"{name} must be a whole number or None, got {_shown(value)}.")
    for name in ("upscale", "face_detector", "encoder"):
        if not isinstance(getattr(options, name), str):
            raise InputError(f"{name} must be a name, got {_shown(getattr(options, name))}.")


def _shown(value: object, limit: int = 40) -> str:
    """``repr(value)``, clipped: a message never repeats a whole hostile input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_options(options: AnimationOptions) -> None:
    """The one check of a request's options, at every public entry (files, live
    sessions): :class:`~fomm_space.errors.InputError` for an option of the wrong kind
    (what a hostile client might send) or out of its range."""
    _check_kinds(options)
    if options.best_frame is not None and options.best_frame < 0:
        raise InputError(f"best_frame must be a frame index >= 0, got {options.best_frame}.")
    if options.max_seconds <= 0:
        raise InputError(f"max_seconds must be positive, got {options.max_seconds:g}.")
    if options.max_frames is not None and options.max_frames < 1:
        raise InputError(f"max_frames must be at least 1, got {options.max_frames}.")
    if options.batch_size is not None and options.batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {options.batch_size}.")
    if options.upscale not in UPSCALERS:
        raise InputError(f"upscale must be one of {', '.join(UPSCALERS)}, got {_shown(options.upscale)}.")
    if not 0.0 <= options.smoothing <= 1.0:
        raise InputError(f"smoothing must be between 0 (off) and 1, got {options.smoothing:g}.")
    if options.face_detector not in DETECTORS:
        raise InputError(f"face_detector must be one of {', '.join(DETECTORS)}, got {_shown(options.face_detector)}.")
    if not 1.0 <= options.crop_scale <= 4.0:
        raise InputError(f"crop_scale must be between 1 and 4 (face box sizes), got {options.crop_scale:g}.")
    if options.encoder not in ENCODERS:
        raise InputError(f"encoder must be one of {', '.join(ENCODERS)}, got {_shown(options.encoder)}.")
