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
from typing import NamedTuple

import numpy as np

from .crop import Box, CropWindow, FaceTrack, center_box, crop, detection_stride, face_square, largest, main_track, \
    sampled_detections, stable_box, track_faces
from .compose import Composer, PasteBack, draw_keypoints
from .compose.tensor import TensorComposer
from .device import select_device, select_dtype
from .errors import InputError
from .faces import FaceDetector, each_at_once, face_detector, face_precision, landmark_workers, \
    normalize_landmarks, pose_distance
from .frames import read_image, to_uint8, write_image
from .model import AnimationModel
from .options import DEFAULTS, AnimationOptions, check_options
from .overlap import WriteBehind, read_ahead
from .video import VideoInfo, VideoWriter, probe, read_frames, scaled_size, video_encoder

Progress = Callable[[str, int, "int | None"], None]
"""``progress(stage, done, total)``; stages: "faces", "best frame", "animating"."""

TRACK_PER_SECOND = 3     # driving frames a second the face track looks at (more where the face jumps),
TRACK_STEADY_PER_SECOND = 1  # thinning out to this while the face holds still
DETECTION_BUDGET = 100   # at most about this many of those on long clips
BEST_FRAME_COARSE = 30    # driving frames the best-frame search looks at first (then a few around the best)
BEST_FRAME_RECHECK = 2   # of those, looked at again with the exact landmarks where the first look was coarse
BEST_FRAME_MAX_STEP = 32  # at most this far apart (more coarse frames on long clips): the frames
                          # around the best, held while the search narrows, stay under 2 x 32
TRACK_SIDE = 320         # longer side of the driving frames the face detector sees (S3FD finds faces
                         # down to about 16 pixels there: a twentieth of the frame)


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
    encoder: str = "x264"

    def summary(self) -> str:
        cut = f" (clip cut at {self.frames} frames, {self.frames / self.fps:g} s: the limit)" if self.truncated else ""
        best = f", reference frame {self.best_frame}" if self.best_frame is not None else ""
        size = f", {self.size[0]}x{self.size[1]}" + (" pasted into the photo" if self.pasted else "")
        return (f"{self.frames} frame{'' if self.frames == 1 else 's'} at {self.fps:g} fps in {self.seconds:.1f} s on {self.device} "
                f"({self.precision}){size}{best}{cut}, encoded with {self.encoder}")


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
    if options.max_frames is not None:
        max_frames = min(max_frames, options.max_frames)
    truncated = info.frame_count is not None and info.frame_count > max_frames
    return max_frames, min(info.frame_count, max_frames) if info.frame_count else None, truncated


def _check_folders(*paths: str | Path | None) -> None:
    """Fail before any work if an output's folder is missing."""
    for path in paths:
        if path is not None and not Path(path).parent.is_dir():
            raise InputError(f"Output folder {Path(path).parent} does not exist.")


class PhotoCrop(NamedTuple):
    """The photo's side of a run."""

    box: Box                  # the square cut out of the photo, in its pixels
    image: np.ndarray         # that square at the model's size: (h, w, 3) uint8 RGB
    paste: PasteBack | None   # the paste-back into the whole photo (None: off, or the photo is small)
    face: Box | None          # the face in ``image``'s pixels (None with cropping off)


def photo_crop(image: np.ndarray, options: AnimationOptions, detector: FaceDetector | None,
               size: tuple[int, int]) -> PhotoCrop:
    """Cut the (H, W, 3) uint8 photo to the square around its largest face (the centred
    square with cropping off) at the model's ``size``; see :class:`PhotoCrop`."""
    face = None
    if not options.crop:
        box = center_box(*image.shape[:2])
    else:
        face = largest(detector.detect(image))
        if face is None:
            raise InputError("No face found in the source photo. Use a photo where the face is clearly visible "
                             "and upright, or {no_crop}.")
        box = face_square(face, options.crop_scale)
    larger = image.shape[0] > size[0] or image.shape[1] > size[1]
    paste = PasteBack(image, box, method=options.upscale) if options.paste_back and larger else None
    return PhotoCrop(box, crop(image, box, size), paste, face.relative_to(box, size) if face else None)


def driving_track(path: Path, info: VideoInfo, max_frames: int, detector: FaceDetector,
                  progress: Progress | None = None) -> tuple[FaceTrack, int]:
    """The main face's track through the driving clip (boxes in the clip's pixels), and
    the number of frames read.

    The frames are decoded at TRACK_SIDE pixels on their longer side for the detector,
    which looks at TRACK_PER_SECOND of them a second (fewer on clips longer than
    DETECTION_BUDGET of those; down to TRACK_STEADY_PER_SECOND while the face holds
    still) and, between two of them, wherever the faces changed (see
    :func:`~fomm_space.crop.sampled_detections`).
    """
    total = min(info.frame_count or max_frames, max_frames)
    stride = max(1, round(info.fps / TRACK_PER_SECOND), detection_stride(total, DETECTION_BUDGET))
    steady_stride = max(stride, round(info.fps / TRACK_STEADY_PER_SECOND))
    width, height = scaled_size(info.size, min(1.0, TRACK_SIDE / max(info.size)))
    count = 0

    def frames():  # scaled down by ffmpeg as it decodes
        nonlocal count
        for i, frame in enumerate(read_frames(path, max_frames=max_frames, size=(width, height))):
            count = i + 1
            if i % stride == 0:
                _notify(progress, "faces", i, total)
            yield frame

    fx, fy = info.size[0] / width, info.size[1] / height
    detections = ((i, [Box(b.left * fx, b.top * fy, b.right * fx, b.bottom * fy) for b in boxes])
                  for i, boxes in sampled_detections(frames(), detector.detect, stride, steady_stride))
    track = main_track(track_faces(detections))
    if track is None:
        raise InputError("No face found in the driving video. Use a clip where one face is clearly visible, "
                         "or {no_crop}.")
    return track, count


def driving_box(path: Path, info: VideoInfo, max_frames: int, options: AnimationOptions,
                detector: FaceDetector | None, progress: Progress | None = None) -> Box:
    """One square for the whole driving clip, around the face tracked through it (see
    :func:`driving_track` and :func:`~fomm_space.crop.stable_box`); the centred square
    with cropping off."""
    if not options.crop:
        width, height = info.size
        return center_box(height, width)
    return stable_box(driving_track(path, info, max_frames, detector, progress)[0], options.crop_scale)


def cropped_frames(path: Path, info: VideoInfo, box: Box, size: tuple[int, int], max_frames: int, step: int = 1,
                   start: int = 0) -> Iterator[np.ndarray]:
    """The driving frames ``start, start + step, ...`` (of the first ``max_frames``) cut
    to ``box`` and resized to ``size``: (H, W, 3) uint8 each.

    ffmpeg cuts out the part of the box inside the frame as it decodes (a 720p frame's
    conversion to RGB and its trip through the pipe cost more than the crop); the edges
    are repeated where the box leaves the frame, then the crop is resized (torch's
    anti-aliased bilinear in fixed point: within 1 of :func:`~fomm_space.crop.crop`).
    """
    window = CropWindow.of(box, info.size[1], info.size[0])
    frames = read_frames(path, max_frames=max_frames, step=step, region=window.region) if start == 0 else \
        itertools.islice(read_frames(path, max_frames=max_frames, region=window.region), start, None, step)
    for frame in frames:
        yield window.finish(frame, size, fixed_point=True)


def find_best_frame(source: np.ndarray, frames: Callable[[int, int, int], Iterator[np.ndarray]], total: int,
                    detector: FaceDetector, *, source_face: Box | None = None,
                    faces: Callable[[int], Box] | None = None, progress: Progress | None = None
                    ) -> tuple[int, np.ndarray]:
    """(index, frame) of the driving frame whose face pose is closest to the source's
    (the authors' criterion: :func:`~fomm_space.faces.closest_pose`), from far fewer
    landmark runs than frames.

    ``frames(start, stop, step)`` yields the cropped driving frames ``start, start +
    step, ...`` before ``stop``; ``total`` is how many there are. ``source_face`` and
    ``faces(i)`` are the face boxes already known (in the crops' pixels): the landmarks
    are found there, without a second detection (where none is found there, a frame is
    searched afresh). The search looks at BEST_FRAME_COARSE frames spread evenly (at
    most BEST_FRAME_MAX_STEP apart), then around the closest of them halves the step down to one
    frame, keeping the closer side (the pose changes smoothly between frames). Where the
    detector has a cheaper ``coarse_landmarks`` (face-alignment's FAN in bf16), the
    spread-out frames are looked at with it, the BEST_FRAME_RECHECK closest of them
    again with ``landmarks``, and the halving goes on from the closest of those: every
    frame the choice is made between is measured by ``landmarks``. The runs are made a
    few at once where the detector says so (see :func:`~fomm_space.faces.each_at_once`):
    the coarse frames in turn, both sides of each halving.
    """
    step = min(detection_stride(total, BEST_FRAME_COARSE), BEST_FRAME_MAX_STEP)
    coarse = getattr(detector, "coarse_landmarks", None)
    runs = {"coarse": coarse or detector.landmarks, "exact": detector.landmarks}
    reference: dict[str, np.ndarray] = {}  # the source's normalised landmarks, by kind of run

    def look(kind: str, jobs: list[tuple[int, np.ndarray]], into: dict[int, tuple[float, np.ndarray]]) -> None:
        """The distances of the frames ``(index, frame)`` by ``kind`` of landmark run,
        into ``into``; the source's first, on the first look of that kind."""
        landmarks = runs[kind]

        def points_of(job: tuple[int, np.ndarray]) -> np.ndarray | None:
            index, frame = job
            if index < 0:
                return landmarks(frame, source_face)
            points = landmarks(frame, faces(index)) if faces is not None else None
            if points is None:  # no track, or the face is not where it was (lost, jumped): a fresh detection
                points = landmarks(frame)
            return points

        jobs = jobs if kind in reference else [(-1, source), *jobs]
        for (index, frame), points in zip(jobs, each_at_once(detector, points_of, jobs)):
            if index >= 0:
                into[index] = (pose_distance(reference[kind], points), frame)
                continue
            found = normalize_landmarks(points) if points is not None else None
            if found is None:
                raise InputError("The face-landmark search found no face in the cropped source photo; "
                                 "{no_best_frame} or use a clearer photo.")
            reference[kind] = found

    seen: dict[int, tuple[float, np.ndarray]] = {}  # by frame: its distance by exact landmarks, and it
    spread: dict[int, tuple[float, np.ndarray]] = {} if coarse is not None else seen
    kind = "coarse" if coarse is not None else "exact"
    jobs: list[tuple[int, np.ndarray]] = []
    batch = landmark_workers(detector)
    for i, frame in enumerate(frames(0, total, step)):
        jobs.append((i * step, frame))
        if len(jobs) + (kind not in reference) >= batch:
            look(kind, jobs, spread)
            jobs = []
            _notify(progress, "best frame", (i + 1) * step, total)
    if jobs or kind not in reference:
        look(kind, jobs, spread)
    if coarse is not None:  # the closest few again, measured as the rest of the search is
        closest = sorted((i for i in spread if np.isfinite(spread[i][0])), key=lambda i: spread[i][0])
        if closest:
            look("exact", [(i, spread[i][1]) for i in closest[:BEST_FRAME_RECHECK]], seen)
    best = min(seen, key=lambda i: seen[i][0], default=None)
    if best is None or not np.isfinite(seen[best][0]):
        raise InputError("No face landmarks were found in any driving frame; {no_best_frame}.")
    if step > 1:  # the frames around the best one, read once; of them, only those on the way are looked at
        lo, hi = max(0, best - step + 1), min(total, best + step)
        window = dict(zip(range(lo, hi), frames(lo, hi, 1)))
        half = step // 2
        while half >= 1:
            look("exact", [(i, window[i]) for i in (best - half, best + half) if i in window and i not in seen], seen)
            best = min((i for i in (best - half, best, best + half) if i in seen), key=lambda i: seen[i][0])
            half //= 2
    return best, seen[best][1]


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
    check_options(options)
    if options.best_frame is not None and options.find_best_frame:
        raise InputError("Give either a best frame index or find_best_frame, not both.")
    model.check_avd(options.avd)
    _check_folders(output, overlay, preview)
    image = read_image(str(source))
    info = probe(driving)
    max_frames, total, truncated = _frame_limits(info, options)
    if detector is None and (options.crop or options.find_best_frame):
        detector = face_detector(str(model.device), options.face_detector, face_precision(model.dtype))

    if options.crop:
        _notify(progress, "faces", 0, total)  # the photo's face first
    s_box, src, paste, s_face = photo_crop(image, options, detector, model.size)
    track = None
    if options.crop:
        track, counted = driving_track(driving, info, max_frames, detector, progress)
        d_box, total = stable_box(track, options.crop_scale), counted
    else:
        d_box = driving_box(driving, info, max_frames, options, detector)

    def frames_between(start: int, stop: int, step: int) -> Iterator[np.ndarray]:
        return cropped_frames(driving, info, d_box, model.size, min(stop, max_frames), step, start)

    best, reference = options.best_frame, None
    if best is None and options.find_best_frame:
        faces = (lambda i: track.box_at(i).relative_to(d_box, model.size)) if track is not None else None
        best, reference = find_best_frame(src, frames_between, total or max_frames, detector, source_face=s_face,
                                          faces=faces, progress=progress)
    elif best is not None:
        reference = next(frames_between(best, best + 1, 1), None)
        if reference is None:
            raise InputError(f"best_frame {best} is past the end of the driving video.")

    pending: deque[np.ndarray] = deque()

    def remember(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for frame in frames:
            pending.append(frame)
            yield frame

    batch = model.batch_size(options.batch_size)
    reader = read_ahead(cropped_frames(driving, info, d_box, model.size, max_frames), 2 * batch)
    done = 0
    prepared = model.prepare_source(src)  # its keypoints once: for the engine and the overlay
    source_kp = prepared.keypoints_array if overlay or preview else None
    composer = Composer(src, source_kp, paste, options.ai_mark)
    # Off the CPU, the paste-back and the mark are batched tensor ops where the frames are.
    on_device = TensorComposer(paste, options.ai_mark, model.device) \
        if paste is not None and model.device.type != "cpu" else None
    writers: list[VideoWriter] = []
    paths: list[Path] = []

    def write(item: tuple[np.ndarray, np.ndarray | None, list[np.ndarray], np.ndarray, np.ndarray]) -> None:
        results, shown, driving_frames, driving_kp, result_kp = item
        for i, result in enumerate(results):
            writers[0].write(shown[i] if shown is not None else composer.frame(result))
            if overlay is not None:
                writers[1].write(composer.panel(driving_frames[i], driving_kp[i], result, result_kp[i]))

    behind = WriteBehind(write, depth=2)
    try:
        encoder = video_encoder(options.encoder, str(model.device))
        writers.append(VideoWriter(output, info.fps, audio_from=driving if info.has_audio else None,
                                   audio_seconds=max_frames / info.fps, encoder=encoder))
        if overlay is not None:
            writers.append(VideoWriter(Path(overlay), info.fps, encoder=encoder))
        for out in model.stream(prepared, remember(reader), relative=options.relative, adapt_scale=options.adapt_scale,
                                batch_size=batch, reference=reference, smoothing=options.smoothing,
                                fps=info.fps, avd=options.avd, keep_on_device=on_device is not None):
            results = to_uint8(out.frames)
            shown = on_device(out.on_device) if on_device is not None else None
            behind.put((results, shown, [pending.popleft() for _ in results], out.driving_keypoints,
                        out.keypoints))
            done += len(results)
            _notify(progress, "animating", done, total)
        behind.close()
        if preview is not None:
            paths.append(write_image(preview, draw_keypoints(src, source_kp)))
        for w in reversed(writers):  # the overlay first: the main output appears last
            paths.insert(0, w.close())
    except BaseException:
        behind.cancel()
        reader.close()
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
                           pasted=paste is not None, encoder=writers[0].encoder)


def crop_video_file(driving: str | Path, output: str | Path, *, size: tuple[int, int] = (256, 256),
                    options: AnimationOptions = DEFAULTS, detector: FaceDetector | None = None,
                    device: str = "cpu", progress: Progress | None = None) -> CropReport:
    """Write the face crop of a video (what FOMM was trained on) to the mp4 ``output``.

    The authors' ``crop-video.py``, but writing the file: one face tracked, one steady
    square (``options.crop_scale``), resized to ``size`` (height, width), sound kept.
    """
    driving, output = Path(driving), Path(output)
    check_options(options)
    _check_folders(output)
    info = probe(driving)
    max_frames, total, truncated = _frame_limits(info, options)
    if detector is None and options.crop:
        dev = select_device(device)
        detector = face_detector(str(dev), options.face_detector, face_precision(select_dtype("auto", dev)))
    box = driving_box(driving, info, max_frames, options, detector, progress)
    with VideoWriter(output, info.fps, audio_from=driving if info.has_audio else None,
                     audio_seconds=max_frames / info.fps, encoder=video_encoder(options.encoder, device)) as writer:
        for frame in cropped_frames(driving, info, box, size, max_frames):
            writer.write(frame)
            _notify(progress, "cropping", writer.frames, total)
    return CropReport(output=output, box=box, frames=writer.frames, fps=info.fps, truncated=truncated)
