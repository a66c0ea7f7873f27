"""Cropping frames to the square the model works on: face boxes, tracking, stable crops.

Boxes are in pixels of the frame they were found in. Nothing here runs a detector:
the detections come in (see :mod:`fomm_space.faces`), crops go out.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .frames import resize


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: ``left, top`` inclusive, ``right, bottom`` exclusive."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return max(0.0, self.right - self.left)

    @property
    def height(self) -> float:
        return max(0.0, self.bottom - self.top)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        """(x, y)."""
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2

    def scaled(self, factor: float) -> "Box":
        """The same box in an image resized by ``factor``."""
        return Box(self.left * factor, self.top * factor, self.right * factor, self.bottom * factor)

    def clipped(self, height: int, width: int) -> "Box":
        """The part of the box inside a ``height`` x ``width`` image."""
        return Box(min(max(self.left, 0), width), min(max(self.top, 0), height),
                   min(max(self.right, 0), width), min(max(self.bottom, 0), height))

    def union(self, other: "Box") -> "Box":
        return Box(min(self.left, other.left), min(self.top, other.top),
                   max(self.right, other.right), max(self.bottom, other.bottom))

    def iou(self, other: "Box") -> float:
        """Intersection over union, in [0, 1]."""
        inter = Box(max(self.left, other.left), max(self.top, other.top),
                    min(self.right, other.right), min(self.bottom, other.bottom)).area
        total = self.area + other.area - inter
        return inter / total if total > 0 else 0.0

    def square(self, side: float | None = None) -> "Box":
        """A square with the same centre, of side ``side`` (default: the longer side)."""
        side = max(self.width, self.height) if side is None else side
        cx, cy = self.center
        return Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)

    def relative_to(self, outer: "Box", size: tuple[int, int]) -> "Box":
        """This box in the pixels of ``outer`` cut out and resized to (height, width)."""
        fx, fy = size[1] / max(outer.width, 1e-9), size[0] / max(outer.height, 1e-9)
        return Box((self.left - outer.left) * fx, (self.top - outer.top) * fy,
                   (self.right - outer.left) * fx, (self.bottom - outer.top) * fy)

    def as_ints(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) rounded to whole pixels, at least 1 pixel wide and high."""
        left, top = round(self.left), round(self.top)
        return left, top, max(left + 1, round(self.right)), max(top + 1, round(self.bottom))


def center_box(height: int, width: int) -> Box:
    """The largest centred square of a ``height`` x ``width`` frame."""
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return Box(left, top, left + side, top + side)


def face_square(face: Box, scale: float) -> Box:
    """The square crop box for a face: ``scale`` times the face box's longer side, same centre."""
    return face.square(scale * max(face.width, face.height))


def largest(boxes: Sequence[Box]) -> Box | None:
    """The box with the largest area (the first of equals), or ``None`` for no boxes."""
    return max(boxes, key=lambda b: b.area, default=None)


@dataclass(frozen=True)
class CropWindow:
    """Where a box lies on a frame: ``region`` (left, top, right, bottom), the part of
    it inside the frame in whole pixels (at least one), and ``pads`` (top, bottom,
    left, right), the rows and columns past the frame's edge, filled by repeating it."""

    region: tuple[int, int, int, int]
    pads: tuple[int, int, int, int]

    @classmethod
    def of(cls, box: Box, height: int, width: int) -> "CropWindow":
        """The window of ``box`` (:meth:`Box.as_ints`) on a ``height`` x ``width`` frame."""
        left, top, right, bottom = box.as_ints()

        def span(lo: int, hi: int, size: int) -> tuple[int, int, int, int]:
            start = min(max(lo, 0), size - 1)
            stop = max(min(hi, size), start + 1)
            before = min(max(start - lo, 0), (hi - lo) - (stop - start))
            return start, stop, before, (hi - lo) - (stop - start) - before

        r0, r1, top_pad, bottom_pad = span(top, bottom, height)
        c0, c1, left_pad, right_pad = span(left, right, width)
        return cls((c0, r0, c1, r1), (top_pad, bottom_pad, left_pad, right_pad))

    def cut(self, frame: np.ndarray) -> np.ndarray:
        """The region of a whole (H, W, 3) frame (a view)."""
        left, top, right, bottom = self.region
        return frame[top:bottom, left:right]

    def finish(self, part: np.ndarray, size: tuple[int, int], *, fixed_point: bool = False) -> np.ndarray:
        """The crop from ``part``, the region's pixels ((h, w, 3) uint8, as :meth:`cut`
        gives them): edges repeated over the pads, resized to (height, width) (see
        :func:`~fomm_space.frames.resize`); (height, width, 3) uint8."""
        top, bottom, left, right = self.pads
        if top or bottom or left or right:
            part = np.pad(part, ((top, bottom), (left, right), (0, 0)), mode="edge")
        return resize(np.ascontiguousarray(part), size, fixed_point=fixed_point)


def crop(image: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """Cut ``box`` out of an (H, W, 3) uint8 image and resize it to (height, width).

    Where the box reaches past the image, the border pixels are repeated: the face is
    never stretched. Resizing is anti-aliased; the result is (height, width, 3) uint8.
    """
    window = CropWindow.of(box, *image.shape[:2])
    return window.finish(window.cut(image), size)


@dataclass
class FaceTrack:
    """One face followed through a clip: ``boxes[i]`` was seen in frame ``frames[i]``."""

    frames: list[int] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)

    def add(self, frame: int, box: Box) -> None:
        self.frames.append(frame)
        self.boxes.append(box)

    @property
    def median_size(self) -> float:
        return float(np.median([max(b.width, b.height) for b in self.boxes]))

    def box_at(self, frame: int) -> Box:
        """The face's box in ``frame``: interpolated between the detections either side,
        the nearest one's before the first and after the last."""
        i = bisect.bisect_left(self.frames, frame)
        if i < len(self.frames) and self.frames[i] == frame:
            return self.boxes[i]
        if i == 0 or i == len(self.frames):
            return self.boxes[min(i, len(self.boxes) - 1)]
        (f0, a), (f1, b) = (self.frames[i - 1], self.boxes[i - 1]), (self.frames[i], self.boxes[i])
        t = (frame - f0) / (f1 - f0)
        return Box(*(u + t * (v - u) for u, v in zip((a.left, a.top, a.right, a.bottom),
                                                    (b.left, b.top, b.right, b.bottom))))


def track_faces(detections: Iterable[tuple[int, Sequence[Box]]], *, min_iou: float = 0.25) -> list[FaceTrack]:
    """Group per-frame detections into tracks of one face each.

    ``detections`` are ``(frame_index, boxes)`` in frame order. A box continues the
    track whose last box overlaps it most (IoU at least ``min_iou``, one box per track
    and frame); otherwise it starts a new track. Frames without a detection end no
    track: the face keeps its last box until it is seen again.
    """
    tracks: list[FaceTrack] = []
    for index, boxes in detections:
        free = list(range(len(tracks)))
        for box in sorted(boxes, key=lambda b: -b.area):
            best = max(free, key=lambda t: box.iou(tracks[t].boxes[-1]), default=None)
            if best is not None and box.iou(tracks[best].boxes[-1]) >= min_iou:
                tracks[best].add(index, box)
                free.remove(best)
            else:
                tracks.append(FaceTrack())
                tracks[-1].add(index, box)
    return tracks


def main_track(tracks: Sequence[FaceTrack]) -> FaceTrack | None:
    """The face seen for the longest stretch of the clip, first to last detection (not
    the most detections: those are denser where faces change); ties: the larger face.
    ``None`` without tracks."""
    return max(tracks, key=lambda t: (t.frames[-1] - t.frames[0], t.median_size), default=None)


def stable_box(track: FaceTrack, scale: float) -> Box:
    """One square crop box for a whole clip: no jitter, and the face inside it throughout.

    Centred on the union of the track's boxes; its side is ``scale`` times the face's
    median size, or more where the face moves further than that.
    """
    union = track.boxes[0]
    for box in track.boxes[1:]:
        union = union.union(box)
    side = max(scale * track.median_size, 1.1 * max(union.width, union.height))
    return union.square(side)


JUMP_IOU = 0.5    # two detections of the main face overlapping less than this: the track jumped
STEADY_IOU = 0.8  # ... overlapping this or more: the face holds still (the detections may thin out)


def _jumped(a: Sequence[Box], b: Sequence[Box]) -> bool:
    """Whether the faces changed between two detections: one more or less, or the
    largest moved so far that its boxes overlap less than JUMP_IOU."""
    if len(a) != len(b):
        return True
    fa, fb = largest(a), largest(b)
    return fa is not None and fb is not None and fa.iou(fb) < JUMP_IOU


def _steady(a: Sequence[Box], b: Sequence[Box]) -> bool:
    """Whether the largest face stayed in place between two detections (no face in
    either: steady too)."""
    fa, fb = largest(a), largest(b)
    return fa is None and fb is None or (fa is not None and fb is not None and fa.iou(fb) >= STEADY_IOU)


def _between(left: tuple[int, list[Box]], frames: list[tuple[int, np.ndarray]], right: tuple[int, list[Box]],
             detect: Callable[[np.ndarray], list[Box]]) -> Iterator[tuple[int, list[Box]]]:
    """Detections in ``frames`` (those strictly between two detected ones), bisected
    where the faces changed, in frame order."""
    if not frames:
        return
    mid = len(frames) // 2
    index, frame = frames[mid]
    found = (index, detect(frame))
    if _jumped(left[1], found[1]):
        yield from _between(left, frames[:mid], found, detect)
    yield found
    if _jumped(found[1], right[1]):
        yield from _between(found, frames[mid + 1:], right, detect)


def sampled_detections(frames: Iterable[np.ndarray], detect: Callable[[np.ndarray], list[Box]],
                       stride: int, max_stride: int | None = None) -> Iterator[tuple[int, list[Box]]]:
    """``(frame index, boxes)`` for frames ``stride`` apart and the last one, and
    between two of those wherever the faces changed (one appeared or left, or the
    largest jumped): there the frames in between are bisected until the change is
    pinned to a frame. While the faces hold still (the largest overlapping its last
    box by STEADY_IOU or more), the step doubles, up to ``max_stride`` (default:
    ``stride``); any change sets it back to ``stride``. In frame order, for
    :func:`track_faces`. Holds at most ``max_stride - 1`` frames.
    """
    max_stride = max(stride, max_stride or stride)
    held: list[tuple[int, np.ndarray]] = []
    last: tuple[int, list[Box]] | None = None
    step, due, index = stride, 0, -1

    def sample(found: tuple[int, list[Box]]) -> Iterator[tuple[int, list[Box]]]:
        nonlocal last, held, step
        if last is not None and _jumped(last[1], found[1]):
            yield from _between(last, held, found, detect)
            step = stride
        elif last is not None:
            step = min(2 * step, max_stride) if _steady(last[1], found[1]) else stride
        yield found
        last, held = found, []

    for index, frame in enumerate(frames):
        if index < due:
            held.append((index, frame))
            continue
        yield from sample((index, detect(frame)))
        due = index + step
    if held:  # the frames after the last sample: the final one is looked at too
        final_index, final = held.pop()
        yield from sample((final_index, detect(final)))


def detection_stride(frame_count: int | None, budget: int) -> int:
    """Look at every n-th frame so that about ``budget`` frames are examined."""
    if not frame_count or frame_count <= budget:
        return 1
    return math.ceil(frame_count / budget)
