"""From files to files: photo + driving video -> animated video (+ keypoint overlay).

The data flow is: read (video) -> crop -> keypoints -> motion transfer -> generator ->
encode, each step in its own module; this one only joins them, streaming.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .crop import center_square
from .errors import InputError
from .frames import read_image, resize, to_uint8
from .model import FommModel
from .options import DEFAULTS, AnimationOptions
from .overlay import overlay_panel
from .video import VideoWriter, probe, read_frames

Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class AnimationReport:
    """What a finished run produced."""

    output: Path
    overlay: Path | None
    frames: int
    fps: float
    seconds: float
    truncated: bool
    device: str
    precision: str

    def summary(self) -> str:
        cut = " (clip cut at the length limit)" if self.truncated else ""
        return (f"{self.frames} frames at {self.fps:g} fps in {self.seconds:.1f} s on {self.device} "
                f"({self.precision}){cut}")


def prepare_source(image: np.ndarray, size: tuple[int, int], options: AnimationOptions) -> np.ndarray:
    """The source photo as the model's (H, W, 3) uint8 input."""
    return resize(center_square(image), size)


def prepare_frames(frames: Iterator[np.ndarray], size: tuple[int, int],
                   options: AnimationOptions) -> Iterator[np.ndarray]:
    """Driving frames as the model's (H, W, 3) uint8 inputs."""
    for frame in frames:
        yield resize(center_square(frame), size)


def animate_files(model: FommModel, source: str | Path, driving: str | Path, output: str | Path, *,
                  options: AnimationOptions = DEFAULTS, overlay: str | Path | None = None,
                  progress: Progress | None = None) -> AnimationReport:
    """Animate the photo ``source`` by the video ``driving`` into the mp4 ``output``.

    The output keeps the driving video's frame rate and sound. With ``overlay``, a
    second video shows source | driving | result with their keypoints. Output files
    appear only when complete. Raises :class:`~fomm_space.errors.FommError` subclasses.
    """
    t0 = time.perf_counter()
    driving, output = Path(driving), Path(output)
    if options.best_frame is not None and options.best_frame < 0:
        raise InputError(f"best_frame must be a frame index >= 0, got {options.best_frame}.")
    if options.max_seconds <= 0:
        raise InputError(f"max_seconds must be positive, got {options.max_seconds}.")
    src = prepare_source(read_image(str(source)), model.size, options)
    info = probe(driving)
    max_frames = max(1, int(options.max_seconds * info.fps))
    truncated = info.frame_count is not None and info.frame_count > max_frames
    total = min(info.frame_count, max_frames) if info.frame_count else None

    reference = None
    if options.best_frame is not None:
        head = prepare_frames(read_frames(driving, max_frames=max_frames), model.size, options)
        reference = next(itertools.islice(head, options.best_frame, None), None)
        if reference is None:
            raise InputError(f"best_frame {options.best_frame} is past the end of the driving video.")

    pending: deque[np.ndarray] = deque()

    def remember(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for frame in frames:
            pending.append(frame)
            yield frame

    frames = remember(prepare_frames(read_frames(driving, max_frames=max_frames), model.size, options))
    writers = [VideoWriter(output, info.fps, audio_from=driving if info.has_audio else None)]
    if overlay is not None:
        writers.append(VideoWriter(Path(overlay), info.fps))
    done = 0
    source_kp = model.prepare_source(src).keypoints_array if overlay is not None else None
    paths: list[Path] = []
    try:
        for batch in model.stream(src, frames, relative=options.relative, adapt_scale=options.adapt_scale,
                                  batch_size=options.batch_size, reference=reference):
            results = to_uint8(batch.frames)
            for i, result in enumerate(results):
                writers[0].write(result)
                driving_frame = pending.popleft()
                if overlay is not None:
                    writers[1].write(overlay_panel(src, source_kp, driving_frame, batch.driving_keypoints[i],
                                                   result, batch.keypoints[i]))
            done += len(results)
            if progress is not None:
                progress(done, total)
        for w in reversed(writers):  # the overlay first: the main output appears last
            paths.insert(0, w.close())
    except BaseException:
        for w in writers:
            w.abort()
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return AnimationReport(output=paths[0], overlay=paths[1] if overlay is not None else None, frames=done,
                           fps=info.fps, seconds=time.perf_counter() - t0, truncated=truncated,
                           device=str(model.device), precision=model.precision)
