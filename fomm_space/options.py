"""Per-request animation options, with their defaults defined once for the API, CLI and UI."""

from __future__ import annotations

from dataclasses import dataclass


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
            unsharp mask), "lanczos" (the same with a Lanczos kernel: 43 dB from bicubic,
            17x slower) or "bilinear" (soft).
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
"""The defaults of a live (webcam) session: a camera's keypoints jitter more than a
clip's, so they are smoothed by default."""
