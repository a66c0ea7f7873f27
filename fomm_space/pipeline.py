"""From files to files: photo + driving video -> animated video (+ keypoint overlay).

The data flow is: read (video) -> crop (faces) -> keypoints -> motion transfer ->
generator -> encode, each step in its own module; this one only joins them, streaming.
A driving clip is read in a few passes (face placement, best-frame search, animation)
and never held in memory whole.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .crop import Box, center_box, crop, detection_stride, face_square, largest, main_track, \
    sampled_detections, stable_box, track_faces
from .errors import InputError
from .faces import FaceDetector, closest_pose, face_detector
from .frames import read_image, to_uint8, write_image
from .model import AnimationModel
from .options import DEFAULTS, AnimationOptions
from .overlay import draw_keypoints, overlay_panel, stamp_ai_mark
from .paste import UPSCALERS, PasteBack
from .video import VideoInfo, VideoWriter, probe, read_frames

Progress = Callable[[str, int, "int | None"], None]
"""``progress(stage, done, total)``; stages: "faces", "best frame", "animating"."""

TRACK_PER_SECOND = 3     # driving frames a second the face track looks at (more where the face jumps)
DETECTION_BUDGET = 100   # at most about this many of those on long clips
BEST_FRAME_BUDGET = 100  # driving frames examined by the best-frame search


@dataclass(frozen=True)
class AnimationReport:
    """What a finished run produced. Boxes are in pixels of the photo / video frames."""

    output: Path
    overlay: Path | None
    preview: Path | None
    frames: int
    fps: float
    seconds: float
    truncated: bool
    device: str
    precision: str
    source_box: Box
    driving_box: Box
    best_frame: int | None
    size: tuple[int, int]
    pasted: bool

    def summary(self) -> str:
        cut = f" (clip cut at {self.frames / self.fps:g} s, the length limit)" if self.truncated else ""
        best = f", reference frame {self.best_frame}" if self.best_frame is not None else ""
        size = f", {self.size[0]}x{self.size[1]}" + (" pasted into the photo" if self.pasted else "")
        return (f"{self.frames} frames at {self.fps:g} fps in {self.seconds:.1f} s on {self.device} "
                f"({self.precision}){size}{best}{cut}")


@dataclass(frozen=True)
class CropReport:
    """What :func:`crop_video_file` wrote."""

    output: Path
    box: Box
    frames: int
    fps: float
    truncated: bool


def _notify(progress: Progress | None, stage: str, done: int, total: int | None) -> None:
    if progress is not None:
        progress(stage, min(done, total) if total else done, total)


def _frame_limits(info: VideoInfo, options: AnimationOptions) -> tuple[int, int | None, bool]:
    """(frames to read at most, frames expected or None, whether the clip is cut)."""
    max_frames = max(1, int(options.max_seconds * info.fps))
    truncated = info.frame_count is not None and info.frame_count > max_frames
    return max_frames, min(info.frame_count, max_frames) if info.frame_count else None, truncated


def validate(options: AnimationOptions) -> None:
    """InputError for an option out of its range."""
    if options.best_frame is not None and options.best_frame < 0:
        raise InputError(f"best_frame must be a frame index >= 0, got {options.best_frame}.")
    if options.max_seconds <= 0:
        raise InputError(f"max_seconds must be positive, got {options.max_seconds:g}.")
    if options.upscale not in UPSCALERS:
        raise InputError(f"upscale must be one of {', '.join(UPSCALERS)}, got {options.upscale!r}.")
    if not 0.0 <= options.smoothing <= 1.0:
        raise InputError(f"smoothing must be between 0 (off) and 1, got {options.smoothing:g}.")
    if not 1.0 <= options.crop_scale <= 4.0:
        raise InputError(f"crop_scale must be between 1 and 4 (face box sizes), got {options.crop_scale:g}.")


def _check_folders(*paths: str | Path | None) -> None:
    """Fail before any work if an output's folder is missing."""
    for path in paths:
        if path is not None and not Path(path).parent.is_dir():
            raise InputError(f"Output folder {Path(path).parent} does not exist.")


def source_box(image: np.ndarray, options: AnimationOptions, detector: FaceDetector | None) -> Box:
    """The square of the (H, W, 3) uint8 photo to animate: around its largest face, or
    the centred square with cropping off."""
    if not options.crop:
        return center_box(*image.shape[:2])
    face = largest(detector.detect(image))
    if face is None:
        raise InputError("No face found in the source photo. Use a photo where the face is clearly visible "
                         "and upright, or {no_crop}.")
    return face_square(face, options.crop_scale)


def photo_crop(image: np.ndarray, options: AnimationOptions, detector: FaceDetector | None,
               size: tuple[int, int]) -> tuple[Box, np.ndarray, PasteBack | None]:
    """The photo's side of a run: its crop box (see :func:`source_box`), the (h, w, 3)
    uint8 crop at the model's ``size``, and the paste-back into the whole photo (None
    when off, or when the photo is no larger than the crop)."""
    box = source_box(image, options, detector)
    larger = image.shape[0] > size[0] or image.shape[1] > size[1]
    paste = PasteBack(image, box, method=options.upscale) if options.paste_back and larger else None
    return box, crop(image, box, size), paste


def driving_box(path: Path, info: VideoInfo, max_frames: int, options: AnimationOptions,
                detector: FaceDetector | None, progress: Progress | None = None) -> Box:
    """One square for the whole driving clip, around the face tracked through it (see
    :func:`~fomm_space.crop.stable_box`); the centred square with cropping off.

    The detector looks at TRACK_PER_SECOND frames a second (fewer on clips longer than
    DETECTION_BUDGET of those) and, between two of them, wherever the faces changed (see
    :func:`~fomm_space.crop.sampled_detections`).
    """
    if not options.crop:
        width, height = info.size
        return center_box(height, width)
    total = min(info.frame_count or max_frames, max_frames)
    stride = max(1, round(info.fps / TRACK_PER_SECOND), detection_stride(total, DETECTION_BUDGET))

    def frames():
        for i, frame in enumerate(read_frames(path, max_frames=max_frames)):
            if i % stride == 0:
                _notify(progress, "faces", i, total)
            yield frame

    track = main_track(track_faces(sampled_detections(frames(), detector.detect, stride)))
    if track is None:
        raise InputError("No face found in the driving video. Use a clip where one face is clearly visible, "
                         "or {no_crop}.")
    return stable_box(track, options.crop_scale)


def cropped_frames(path: Path, box: Box, size: tuple[int, int], max_frames: int, step: int = 1
                   ) -> Iterator[np.ndarray]:
    """The driving frames cut to ``box`` and resized to ``size``: (H, W, 3) uint8 each."""
    for frame in read_frames(path, max_frames=max_frames, step=step):
        yield crop(frame, box, size)


def find_best_frame(source: np.ndarray, frames: Iterator[np.ndarray], step: int, detector: FaceDetector,
                    total: int | None = None, progress: Progress | None = None) -> int:
    """Index of the driving frame whose face pose is closest to the source's (the
    authors' ``find_best_frame``); ``frames`` are every ``step``-th cropped frame."""
    source_points = detector.landmarks(source)
    if source_points is None:
        raise InputError("The face-landmark search found no face in the cropped source photo; "
                         "{no_best_frame} or use a clearer photo.")

    def candidates():
        for i, frame in enumerate(frames):
            yield i * step, detector.landmarks(frame)
            _notify(progress, "best frame", (i + 1) * step, total)

    best = closest_pose(source_points, candidates())
    if best is None:
        raise InputError("No face landmarks were found in any driving frame; {no_best_frame}.")
    return best


def animate_files(model: AnimationModel, source: str | Path, driving: str | Path, output: str | Path, *,
                  options: AnimationOptions = DEFAULTS, overlay: str | Path | None = None,
                  preview: str | Path | None = None, detector: FaceDetector | None = None,
                  progress: Progress | None = None) -> AnimationReport:
    """Animate the photo ``source`` by the video ``driving`` into the mp4 ``output``.

    Faces are found and cropped in both (``options.crop``). The output keeps the
    driving video's frame rate and sound. With ``overlay``, a second video shows
    source | driving | result with their keypoints; with ``preview``, an image of the
    cropped source with its keypoints is written. ``detector`` defaults to
    face-alignment on the model's device. Output files appear only when complete.
    Raises :class:`~fomm_space.errors.FommError` subclasses.
    """
    t0 = time.perf_counter()
    driving, output = Path(driving), Path(output)
    validate(options)
    if options.best_frame is not None and options.find_best_frame:
        raise InputError("Give either a best frame index or find_best_frame, not both.")
    model.check_avd(options.avd)
    _check_folders(output, overlay, preview)
    image = read_image(str(source))
    info = probe(driving)
    max_frames, total, truncated = _frame_limits(info, options)
    if detector is None and (options.crop or options.find_best_frame):
        detector = face_detector(str(model.device))

    s_box, src, paste = photo_crop(image, options, detector, model.size)
    d_box = driving_box(driving, info, max_frames, options, detector, progress)

    best = options.best_frame
    if best is None and options.find_best_frame:
        step = detection_stride(total, BEST_FRAME_BUDGET)
        best = find_best_frame(src, cropped_frames(driving, d_box, model.size, max_frames, step), step,
                               detector, total, progress)
    reference = None
    if best is not None:
        reference = next(itertools.islice(cropped_frames(driving, d_box, model.size, max_frames), best, None), None)
        if reference is None:
            raise InputError(f"best_frame {best} is past the end of the driving video.")

    pending: deque[np.ndarray] = deque()

    def remember(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for frame in frames:
            pending.append(frame)
            yield frame

    frames = remember(cropped_frames(driving, d_box, model.size, max_frames))
    done = 0
    source_kp = model.detect_keypoints([src])["value"][0].cpu().numpy() if overlay or preview else None
    writers: list[VideoWriter] = []
    paths: list[Path] = []
    try:
        writers.append(VideoWriter(output, info.fps, audio_from=driving if info.has_audio else None))
        if overlay is not None:
            writers.append(VideoWriter(Path(overlay), info.fps))
        for batch in model.stream(src, frames, relative=options.relative, adapt_scale=options.adapt_scale,
                                  batch_size=options.batch_size, reference=reference,
                                  smoothing=options.smoothing, fps=info.fps, avd=options.avd):
            results = to_uint8(batch.frames)
            for i, result in enumerate(results):
                shown = paste(result) if paste is not None else result
                writers[0].write(stamp_ai_mark(shown) if options.ai_mark else shown)
                driving_frame = pending.popleft()
                if overlay is not None:
                    writers[1].write(overlay_panel(src, source_kp, driving_frame, batch.driving_keypoints[i],
                                                   result, batch.keypoints[i]))
            done += len(results)
            _notify(progress, "animating", done, total)
        if preview is not None:
            paths.append(write_image(preview, draw_keypoints(src, source_kp)))
        for w in reversed(writers):  # the overlay first: the main output appears last
            paths.insert(0, w.close())
    except BaseException:
        for w in writers:
            w.abort()
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return AnimationReport(output=paths[0], overlay=Path(overlay) if overlay is not None else None,
                           preview=Path(preview) if preview is not None else None, frames=done, fps=info.fps,
                           seconds=time.perf_counter() - t0, truncated=truncated, device=str(model.device),
                           precision=model.precision, source_box=s_box, driving_box=d_box, best_frame=best,
                           size=(paste.size[1], paste.size[0]) if paste is not None else (model.size[1], model.size[0]),
                           pasted=paste is not None)


def crop_video_file(driving: str | Path, output: str | Path, *, size: tuple[int, int] = (256, 256),
                    options: AnimationOptions = DEFAULTS, detector: FaceDetector | None = None,
                    device: str = "cpu", progress: Progress | None = None) -> CropReport:
    """Write the face crop of a video (what FOMM was trained on) to the mp4 ``output``.

    The authors' ``crop-video.py``, but writing the file: one face tracked, one steady
    square (``options.crop_scale``), resized to ``size`` (height, width), sound kept.
    """
    driving, output = Path(driving), Path(output)
    validate(options)
    _check_folders(output)
    info = probe(driving)
    max_frames, total, truncated = _frame_limits(info, options)
    if detector is None and options.crop:
        detector = face_detector(device)
    box = driving_box(driving, info, max_frames, options, detector, progress)
    with VideoWriter(output, info.fps, audio_from=driving if info.has_audio else None) as writer:
        for frame in cropped_frames(driving, box, size, max_frames):
            writer.write(frame)
            _notify(progress, "cropping", writer.frames, total)
    return CropReport(output=output, box=box, frames=writer.frames, fps=info.fps, truncated=truncated)
