"""Finding faces and their 68 landmarks (face-alignment), and the best-frame search.

A :class:`FaceDetector` turns an (H, W, 3) uint8 RGB image into face boxes and
landmarks. :func:`face_detector` gives the face-alignment one, created once per device
and reused; any object with the same two methods can take its place (tests use a
deterministic one).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

import numpy as np

from .crop import Box, largest
from .errors import InputError, ModelNotFoundError
from .frames import resize
from .motion import convex_hull_area

# face-alignment's weight files, looked up in $TORCH_HOME/hub/checkpoints: each face
# detector's, and the 2D FAN landmark network's (FAN_WEIGHTS).
DETECTOR_WEIGHTS = {
    "sfd": ("s3fd-619a316812.pth",),
    "blazeface": ("blazeface.pth", "anchors.npy"),
    "blazeface-back": ("blazefaceback.pth", "anchorsback.npy"),
}
DETECTORS = tuple(DETECTOR_WEIGHTS)
"""face-alignment's detectors on offer (those that need no other package): S3FD (the
authors' choice and the default: a VGG-16 that finds small and turned faces anywhere in
the frame), and BlazeFace, MediaPipe's networks for phone cameras: ``blazeface`` at 128
pixels for close-up selfie faces, ``blazeface-back`` at 256 pixels for faces further
away. BlazeFace looks only at the frame's central square."""
_FA_DETECTOR = {"sfd": ("sfd", {}), "blazeface": ("blazeface", {}),
                "blazeface-back": ("blazeface", {"back_model": True})}
FAN_WEIGHTS = "2DFAN4-11f355bf06.pth.tar"
DETECTION_SIDE = 640  # images are scaled down to this longer side before detection
FACE_PRECISIONS = ("fp32", "bf16")
T = TypeVar("T")
R = TypeVar("R")


def weight_files(detector: str = "sfd") -> tuple[str, ...]:
    """The files face-alignment needs for ``detector`` and the landmarks."""
    return (*DETECTOR_WEIGHTS[detector], FAN_WEIGHTS)


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Box]:
        """Boxes of the faces in an (H, W, 3) uint8 RGB image, in its pixels."""

    def landmarks(self, image: np.ndarray, face: Box | None = None) -> np.ndarray | None:
        """(68, 2) float (x, y) pixel landmarks of the face in ``face`` (a box in the
        image's pixels, from an earlier detection), or without it of the largest face
        found; ``None`` where there is none."""


def face_precision(model_dtype: object) -> str:
    """The precision of the face networks beside a model computing in ``model_dtype``
    (a torch dtype): ``bf16`` beside a bf16 model (``auto`` on a CPU with native bf16),
    else ``fp32`` (fp16 on CUDA is not used for them: S3FD sees raw 0-255 pixels, and on
    a GPU they are cheap)."""
    import torch

    return "bf16" if model_dtype == torch.bfloat16 else "fp32"


def _in_bf16(net, device_type: str):
    """``net`` called under bf16 autocast on ``device_type``, its outputs back in fp32
    (face-alignment turns them into numpy arrays): an ``nn.Module`` holding it."""
    import torch

    class InBf16(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            with torch.autocast(device_type, torch.bfloat16):
                out = self.net(x)
            return [o.float() for o in out] if isinstance(out, (list, tuple)) else out.float()

    return InBf16()


class FaceAlignmentDetector:
    """One of face-alignment's face detectors (:data:`DETECTORS`) and its 2D FAN
    landmarks, on one device.

    ``precision="bf16"`` runs S3FD under bf16 autocast (BlazeFace, a few ms, stays in
    fp32), and FAN so in :attr:`coarse_landmarks`; :meth:`landmarks` is always fp32.
    ``python benchmarks/bench_faces.py`` on a 2-core Intel Xeon with AMX: S3FD on
    320x180 163 -> 48 ms, on 640x480 947 -> 267 ms; FAN 250 -> 82 ms a run, two at a
    time. With random weights kept in range, bf16 moves S3FD's face scores and box
    offsets 3.5-4x less than a JPEG round trip (quality 95) of the picture does; FAN's
    heatmaps about as much as that round trip (a little less), hence fp32 for the
    landmarks that decide.
    """

    def __init__(self, device: str = "cpu", detector: str = "sfd", *, detection_side: int = DETECTION_SIDE,
                 precision: str = "fp32"):
        import face_alignment

        if detector not in DETECTOR_WEIGHTS:
            raise InputError(f"Unknown face detector {detector!r}; use one of {', '.join(DETECTORS)}.")
        if precision not in FACE_PRECISIONS:
            raise InputError(f"Unknown face-network precision {precision!r}; use one of "
                             f"{', '.join(FACE_PRECISIONS)}.")
        self.detection_side = detection_side
        self.precision = precision
        self._device = str(device)
        try:
            name, kwargs = _FA_DETECTOR[detector]
            self._fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device=device,
                                                    flip_input=False, face_detector=name,
                                                    face_detector_kwargs=kwargs, compile=False)
        except Exception as e:  # urllib, OSError, RuntimeError from torch.load: all mean the same here
            hub = os.path.join(_torch_hub_dir(), "checkpoints")
            raise ModelNotFoundError(
                f"Face detection needs face-alignment's weights ({', '.join(weight_files(detector))}) in {hub}, "
                f"and they could not be loaded or downloaded ({type(e).__name__}: {str(e)[:200]}). Connect to "
                "the internet once, copy the files there, or {no_crop}.") from e
        if str(device) == "cpu":
            self._channels_last(detector)
        if precision == "bf16" and detector == "sfd":
            sfd = self._fa.face_detector
            sfd.face_detector = _in_bf16(sfd.face_detector, self._device_type)

    @property
    def _device_type(self) -> str:
        return self._device.split(":")[0]

    def _channels_last(self, detector: str) -> None:
        """S3FD's and FAN's weights in channels-last order on the CPU: oneDNN then skips
        reordering every activation (the same sums, in another order: results within
        float rounding). Measured on a 2-core Intel Xeon (AVX-512, AMX): S3FD on 320x180
        178 -> 130 ms, on 640x480 870 -> 700 ms; FAN 231 -> 222 ms. (BlazeFace, a few
        ms, is left as it is.)"""
        import torch

        nets = [self._fa.face_alignment_net]
        if detector == "sfd":
            nets.append(self._fa.face_detector.face_detector)
        for net in nets:
            net.to(memory_format=torch.channels_last)

    @property
    def workers(self) -> int:
        """How many landmark runs :func:`each_at_once` makes at once
        (:func:`~fomm_space.device.cpu_workers`: FAN on 2 cores of an Intel Xeon, two at
        a time on one thread each, 219 ms a run against 246 on two threads one after the
        other)."""
        from .device import cpu_workers

        return cpu_workers(self._device)

    def warm_up(self) -> None:
        """Run both networks once on a blank picture: their first run in a process costs
        seconds (FAN's about 8 s on 2 CPU cores), better spent at start-up than in a
        user's request."""
        blank = np.zeros((256, 256, 3), np.uint8)
        self.detect(blank)
        self.landmarks(blank, Box(64, 64, 192, 192))
        if self.coarse_landmarks is not None:  # bf16's first run costs seconds of its own
            self.coarse_landmarks(blank, Box(64, 64, 192, 192))

    def detect(self, image: np.ndarray) -> list[Box]:
        h, w = image.shape[:2]
        factor = min(1.0, self.detection_side / max(h, w))
        small = resize(image, (max(1, round(h * factor)), max(1, round(w * factor)))) if factor < 1 else image
        found = self._fa.face_detector.detect_from_image(np.ascontiguousarray(small))
        boxes = [Box(*(float(v) / factor for v in d[:4])).clipped(h, w) for d in found]
        return [b for b in boxes if b.area > 0]

    def landmarks(self, image: np.ndarray, face: Box | None = None) -> np.ndarray | None:
        return self._landmarks(image, face, bf16=False)

    @property
    def coarse_landmarks(self) -> Callable[[np.ndarray, Box | None], np.ndarray | None] | None:
        """:meth:`landmarks` with FAN in bf16 (about 3x cheaper), for a first look over
        many frames (see :func:`~fomm_space.pipeline.find_best_frame`); ``None`` at
        fp32, where it would be :meth:`landmarks` itself."""
        if self.precision != "bf16":
            return None
        return lambda image, face=None: self._landmarks(image, face, bf16=True)

    def _landmarks(self, image: np.ndarray, face: Box | None, bf16: bool) -> np.ndarray | None:
        import torch

        face = largest(self.detect(image)) if face is None else face
        if face is None or face.area <= 0:
            return None
        # autocast holds for this thread only: landmark runs at once in other threads keep theirs
        precision = torch.autocast(self._device_type, torch.bfloat16) if bf16 else contextlib.nullcontext()
        with warnings.catch_warnings(), precision:
            warnings.simplefilter("ignore")
            points = self._fa.get_landmarks_from_image(
                np.ascontiguousarray(image), detected_faces=[np.array([face.left, face.top, face.right,
                                                                       face.bottom, 1.0])])
        return None if not points else np.asarray(points[0][:, :2], dtype=np.float64)


def landmark_workers(detector: object) -> int:
    """How many landmark runs ``detector`` takes at once: its ``workers``, else 1."""
    return max(1, int(getattr(detector, "workers", 1)))


def each_at_once(detector: object, run: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[run(item) for item in items]``, made :func:`landmark_workers` at a time (see
    :attr:`FaceAlignmentDetector.workers`), each worker on its share of torch's threads."""
    workers = min(len(items), landmark_workers(detector))
    if workers <= 1:
        return [run(item) for item in items]
    from .device import worker_pool

    with worker_pool(workers, "fomm-landmarks") as pool:
        return list(pool.map(run, items))


def _torch_hub_dir() -> str:
    import torch

    return torch.hub.get_dir()


_detectors: dict[str, FaceAlignmentDetector] = {}  # by "device/detector/precision"
_lock = threading.Lock()


def face_detector(device: str = "cpu", detector: str = "sfd", precision: str = "fp32") -> FaceAlignmentDetector:
    """The face-alignment ``detector`` (see :data:`DETECTORS`) on ``device`` at
    ``precision`` (see :class:`FaceAlignmentDetector`), created on first use and kept."""
    key = f"{device}/{detector}/{precision}"
    with _lock:
        if key not in _detectors:
            _detectors[key] = FaceAlignmentDetector(str(device), detector, precision=precision)
        return _detectors[key]


def normalize_landmarks(points: np.ndarray) -> np.ndarray | None:
    """(68, 2) landmarks centred and divided by sqrt(convex-hull area), as the authors'
    best-frame search does, so that pose is compared whatever the face's size; ``None``
    where the points are degenerate (no area)."""
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    area = convex_hull_area(pts)
    if not np.isfinite(area) or area <= 1e-9:
        return None
    return (pts - pts.mean(axis=0)) / np.sqrt(area)


def closest_pose(source: np.ndarray, candidates: Iterable[tuple[int, np.ndarray | None]]) -> int | None:
    """The index of the candidate whose landmarks are closest to ``source``'s.

    ``source`` and each candidate are (68, 2) landmarks (or ``None``: no face in that
    frame, skipped). Distance: sum of squared differences after
    :func:`normalize_landmarks`. Returns ``None`` when no candidate has a face.
    """
    ref = normalize_landmarks(source)
    if ref is None:
        return None
    best, best_dist = None, np.inf
    for index, points in candidates:
        dist = pose_distance(ref, points)
        if dist < best_dist:
            best, best_dist = index, dist
    return best


def pose_distance(reference: np.ndarray, points: np.ndarray | None) -> float:
    """The authors' best-frame distance: the sum of squared differences between
    ``reference`` (landmarks already through :func:`normalize_landmarks`) and
    ``points`` normalised the same way; infinite for no face (``None``) or degenerate
    points."""
    norm = None if points is None else normalize_landmarks(points)
    return np.inf if norm is None else float(((norm - reference) ** 2).sum())
