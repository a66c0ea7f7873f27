"""Server time of a live (webcam) frame: crop + engine at batch 1 + image encoding.

    python benchmarks/bench_live.py [--frames 60] [--device cpu|cuda] [--precision auto]
                                    [--config config/vox-256.yaml] [--camera 640x480]
                                    [--paste-back] [--crop]

A random-weight model (BatchNorm calibrated, as in bench_engine.py) animates a 1280x960
photo by ``--frames`` camera frames of ``--camera`` size, through
:class:`fomm_space.live.LiveSession`, as the Live tab does; each output is then encoded
as the page gets it (JPEG, Pillow, quality 90). Reports milliseconds a frame by stage
and the frames per second the server can keep. ``--crop`` adds the face-following
(face-alignment's S3FD with random weights, checked in the background every 30 frames;
it finds no faces, and is then answered with a fixed box).
The browser's own frame rate is printed by the live browser test
(``tests/test_browser.py -k live``).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import random_model, smooth_noise  # noqa: E402

from fomm_space.config import CONFIG_DIR  # noqa: E402
from fomm_space.families import read_config  # noqa: E402
from fomm_space.crop import Box  # noqa: E402
from fomm_space.live import LiveSession  # noqa: E402
from fomm_space.model import AnimationModel  # noqa: E402
from fomm_space.options import LIVE_DEFAULTS  # noqa: E402


def photo_1280x960(rng: np.random.Generator) -> np.ndarray:
    """A 960 x 1280 x 3 uint8 photo of blurred noise (for paste-back at that size)."""
    image = (smooth_noise(rng, 1, 960)[0] * 255).astype(np.uint8)
    return np.concatenate([image, image[:, :320]], axis=1)


def encode_jpeg(frame: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--config", default=str(CONFIG_DIR / "vox-256.yaml"))
    parser.add_argument("--camera", default="640x480")
    parser.add_argument("--paste-back", action="store_true", help="paste into the 1280x960 photo")
    parser.add_argument("--crop", action="store_true", help="follow the camera face (S3FD, random weights)")
    args = parser.parse_args()
    width, height = map(int, args.camera.split("x"))
    config = read_config(args.config)
    model = AnimationModel(random_model(config), config, device=args.device, precision=args.precision)
    rng = np.random.default_rng(0)
    photo = photo_1280x960(rng)
    camera = (smooth_noise(rng, args.frames, max(width, height)) * 255).astype(np.uint8)[:, :height, :width]
    detector = None
    if args.crop:
        from fomm_space.faces import face_precision

        detector = FixedWhereNone(random_face_detector(args.device, precision=face_precision(model.dtype)))
    options = dataclasses.replace(LIVE_DEFAULTS, crop=args.crop, paste_back=args.paste_back)
    live = LiveSession(model, photo, options, detector=detector)
    for frame in camera[:5]:  # warm-up
        live.push(frame)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    push_ms, encode_ms = [], []
    t0 = time.perf_counter()
    for frame in camera:
        a = time.perf_counter()
        out = live.push(frame)
        sync()
        b = time.perf_counter()
        encode_jpeg(out)
        c = time.perf_counter()
        push_ms.append(1000 * (b - a))
        encode_ms.append(1000 * (c - b))
    wall = time.perf_counter() - t0
    live.close()
    total = [p + e for p, e in zip(push_ms, encode_ms)]
    device = torch.cuda.get_device_name() if model.device.type == "cuda" else platform.processor() or "cpu"
    print(f"{config.family.upper()} {Path(args.config).stem}, {model.device} ({device}), {model.precision}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; camera {width}x{height}, "
          f"crop {'on' if args.crop else 'off'}, paste-back {'on' if args.paste_back else 'off'}")
    print(f"server time a frame: median {statistics.median(total):.1f} ms (crop + engine at batch 1 + "
          f"composition {statistics.median(push_ms):.1f} ms, JPEG encoding {statistics.median(encode_ms):.1f} ms), "
          f"p95 {sorted(total)[int(0.95 * (len(total) - 1))]:.1f} ms")
    print(f"the server keeps {len(total) / wall:.1f} frames/s ({args.frames} frames in {wall:.1f} s)")


class FixedWhereNone:
    """A face detector that times its calls and, where the real one finds no face,
    answers with a fixed box (the centred square of the image's middle half)."""

    def __init__(self, detector):
        self.detector = detector
        self.workers = getattr(detector, "workers", 1)  # landmark runs at once (fomm_space.faces.each_at_once)
        self.calls = {"detect": 0, "landmarks": 0, "coarse landmarks": 0}
        self.fixed = {"detect": 0, "landmarks": 0, "coarse landmarks": 0}

    def detect(self, image: np.ndarray) -> list[Box]:
        self.calls["detect"] += 1
        boxes = self.detector.detect(image)
        if boxes:
            return boxes
        self.fixed["detect"] += 1
        h, w = image.shape[:2]
        side = min(h, w) / 2
        return [Box(w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2)]

    def landmarks(self, image: np.ndarray, face: Box | None = None):
        return self._fixed("landmarks", self.detector.landmarks(image, face), image)

    @property
    def coarse_landmarks(self):  # the real one's, where it has them (FAN in bf16)
        coarse = getattr(self.detector, "coarse_landmarks", None)
        if coarse is None:
            return None
        return lambda image, face=None: self._fixed("coarse landmarks", coarse(image, face), image)

    def _fixed(self, kind: str, points: np.ndarray | None, image: np.ndarray) -> np.ndarray:
        self.calls[kind] += 1
        if points is not None:
            return points
        self.fixed[kind] += 1
        t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        h, w = image.shape[:2]
        return np.stack([w / 2 + w / 4 * np.cos(t), h / 2 + h / 3 * np.sin(t)], axis=1)


def write_face_weights(folder: Path, face_heads: tuple[str, ...] = ()) -> None:
    """face-alignment's weight files, random, into ``folder`` (``$TORCH_HOME/hub/
    checkpoints``), so that its real code runs and nothing is downloaded: those of every
    detector in ``fomm_space.faces.DETECTORS`` and FAN's. S3FD's box heads are zeroed and
    its classification heads fixed: the anchors of the heads named in ``face_heads``
    (such as "fc7") score as faces, all others as background. (Random heads would call
    thousands of anchors faces.) BlazeFace's classifiers score every anchor as
    background. FAN keeps its random weights."""
    from face_alignment.detection.blazeface.net_blazeface import BlazeFace
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    from fomm_space.faces import DETECTOR_WEIGHTS, FAN_WEIGHTS

    torch.manual_seed(0)
    detector = s3fd()
    with torch.no_grad():
        for name, module in detector.named_children():
            if "mbox" in name:
                module.weight.zero_()
                module.bias.zero_()
                if name.endswith("_conf"):
                    face = name.split("_")[0] in face_heads
                    module.bias[:-1] = 0.0 if face else 10.0  # the background channels
                    module.bias[-1] = 10.0 if face else 0.0   # the face channel
    torch.save(detector.state_dict(), folder / DETECTOR_WEIGHTS["sfd"][0])
    for name, back in (("blazeface", False), ("blazeface-back", True)):
        blaze = BlazeFace(back_model=back)
        with torch.no_grad():
            for head in (blaze.classifier_8, blaze.classifier_16):
                head.weight.zero_()
                head.bias.fill_(-10.0)
        weights, anchors = DETECTOR_WEIGHTS[name]
        torch.save(blaze.state_dict(), folder / weights)
        np.save(folder / anchors, np.random.default_rng(0).random((blaze.num_anchors, 4), dtype=np.float32))
    torch.save(FAN(4).state_dict(), folder / FAN_WEIGHTS)


def random_face_detector(device: str, detector: str = "sfd", precision: str = "fp32"):
    """face-alignment's real networks with random weights (:func:`write_face_weights`,
    in a temporary TORCH_HOME) at ``precision``: they cost what the real ones do, and
    find no faces."""
    import os
    import tempfile

    from fomm_space.faces import FaceAlignmentDetector

    home = Path(tempfile.mkdtemp(prefix="torch-home-"))
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    write_face_weights(folder)
    os.environ["TORCH_HOME"] = str(home)
    return FaceAlignmentDetector(device, detector, precision=precision)


if __name__ == "__main__":
    main()
