"""face-alignment's networks at fp32 and bf16: their speed, and how far bf16 moves them.

    python benchmarks/bench_faces.py [--repeat 5]

Speed: S3FD on 320x180 (the face track's frames) and 640x480 (a photo), FAN on a
256x256 face crop, on two threads and two at a time on one thread each (as the
best-frame search runs them), with the weights channels-last as FaceAlignmentDetector
keeps them on the CPU. bf16 is autocast, as FaceAlignmentDetector(precision="bf16")
runs it; it is fast only on CPUs with native bf16 (AVX512-BF16, AMX).

Closeness: trained weights cannot be downloaded here, so the networks get random
weights scaled to keep activations in range (S3FD: each convolution's output to unit
spread on drawn faces; FAN: BatchNorm statistics measured on face crops). Beside what
bf16 changes (the face scores and box offsets of every S3FD anchor; FAN's heatmaps and
the landmarks read from them), the same is measured for the fp32 network on the
picture after a JPEG round trip at quality 95: a change no one would call a different
picture.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.make_examples import draw_face  # noqa: E402


def drawn_scenes(count: int, size: tuple[int, int] = (180, 320)) -> list[np.ndarray]:
    """``count`` (h, w, 3) uint8 RGB pictures of a drawn face, each moved and turned a little."""
    import cv2

    h, w = size
    scenes = []
    for i in range(count):
        face = draw_face(dx=6 * np.sin(i), dy=3 * np.cos(i), mouth=0.2 + 0.1 * i % 0.6, tilt=5 * np.sin(2 * i))
        side = int(0.8 * h)
        scene = np.full((h, w, 3), (90, 120, 100), np.uint8)
        top, left = (h - side) // 2, (w - side) // 2 + i * 3 % (w - side) // 4
        scene[top:top + side, left:left + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        scenes.append(cv2.GaussianBlur(scene, (0, 0), 0.7))
    return scenes


def jpeg_round_trip(image: np.ndarray, quality: int = 95) -> np.ndarray:
    import cv2

    ok, data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1])


def _s3fd_input(image: np.ndarray) -> torch.Tensor:
    """As face-alignment feeds S3FD: BGR, the channel means subtracted, 0-255."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None])).float().flip(-3)
    return (x - torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)).contiguous(memory_format=torch.channels_last)


def calibrated_s3fd(images: list[np.ndarray], seed: int = 0) -> torch.nn.Module:
    """face-alignment's S3FD with random weights, each convolution in turn scaled so
    that its output has unit spread on ``images``; channels-last, in eval mode."""
    from face_alignment.detection.sfd.net_s3fd import s3fd

    torch.manual_seed(seed)
    net = s3fd().eval().to(memory_format=torch.channels_last)
    batch = torch.cat([_s3fd_input(i) for i in images])
    with torch.no_grad():
        for conv in [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]:
            out = []
            hook = conv.register_forward_hook(lambda m, i, o: out.append(o.std().item()))
            net(batch)
            hook.remove()
            conv.weight /= out[0]
            conv.bias /= out[0]
    return net


def _s3fd_outputs(net: torch.nn.Module, image: np.ndarray, bf16: bool) -> tuple[list, list]:
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        out = [o.float() for o in net(_s3fd_input(image))]
    return [torch.softmax(out[i], 1)[:, 1] for i in range(0, len(out), 2)], out[1::2]


def deviations(net: torch.nn.Module, image: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Mean absolute change of S3FD's face scores (0-1) and box offsets over all
    anchors: bf16 against fp32, and fp32 after a JPEG round trip against fp32."""
    scores, offsets = _s3fd_outputs(net, image, False)

    def change(other):
        s, o = other
        return {"score": float(np.mean([(a - b).abs().mean().item() for a, b in zip(scores, s)])),
                "offset": float(np.mean([(a - b).abs().mean().item() for a, b in zip(offsets, o)]))}

    return change(_s3fd_outputs(net, image, True)), change(_s3fd_outputs(net, jpeg_round_trip(image), False))


def calibrated_fan(crops: list[np.ndarray], seed: int = 0) -> torch.nn.Module:
    """face-alignment's FAN with random weights and BatchNorm statistics measured on
    ``crops`` (256x256 uint8 RGB); channels-last, in eval mode."""
    from face_alignment.models import FAN

    torch.manual_seed(seed)
    net = FAN(4)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        net.train()
        net(torch.cat([_fan_input(c) for c in crops]))
    return net.eval().to(memory_format=torch.channels_last)


def _fan_input(crop: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)[None])).float().div(255) \
        .contiguous(memory_format=torch.channels_last)


def fan_deviations(net: torch.nn.Module, crop: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Mean absolute change of FAN's last heatmaps, and the mean distance (in heatmap
    pixels, 64 across the crop) the 68 landmarks read from them move: bf16, and a JPEG
    round trip, each against fp32."""
    from face_alignment.utils import get_preds_fromhm

    def run(image, bf16):
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            out = net(_fan_input(image))
        heat = (out[-1] if isinstance(out, list) else out).float()
        return heat, get_preds_fromhm(heat.numpy())[0][0]

    heat, points = run(crop, False)

    def change(other):
        h, p = other
        return {"heatmap": (heat - h).abs().mean().item(), "landmarks": float(np.linalg.norm(points - p, axis=1).mean())}

    return change(run(crop, True)), change(run(jpeg_round_trip(crop), False))


def _ms(fn, repeat: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1000


def _two_at_once_ms(fn, repeat: int, bf16: bool) -> float:
    """ms a run with two threads running ``fn`` at once, each on one torch thread."""
    def worker():
        torch.set_num_threads(1)
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            for _ in range(repeat):
                fn()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - t0) / (2 * repeat) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_request import cpu_name

    scenes = drawn_scenes(6)
    s3fd = calibrated_s3fd(scenes[:3])
    crops = [np.ascontiguousarray(s[18:162, 88:232]) for s in scenes]
    import cv2

    crops = [cv2.resize(c, (256, 256), interpolation=cv2.INTER_CUBIC) for c in crops]
    fan = calibrated_fan(crops[:4])
    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    inputs = {"S3FD 320x180": (s3fd, _s3fd_input(scenes[0])),
              "S3FD 640x480": (s3fd, _s3fd_input(cv2.resize(scenes[0], (640, 480)))),
              "FAN 256x256": (fan, _fan_input(crops[0]))}
    for name, (net, x) in inputs.items():
        row = []
        for bf16 in (False, True):
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                alone = _ms(lambda: net(x), args.repeat)
            pair = _two_at_once_ms(lambda: net(x), args.repeat, bf16)
            row.append(f"{'bf16' if bf16 else 'fp32'} {alone:.0f} ms (two at once: {pair:.0f} ms a run)")
        print(f"  {name}: " + ", ".join(row))
    print("S3FD (calibrated random weights), mean change over all anchors: bf16 | JPEG-95 round trip")
    for i, scene in enumerate(scenes):
        bf16, jpeg = deviations(s3fd, scene)
        print(f"  scene {i}: face score {bf16['score']:.5f} | {jpeg['score']:.5f}; "
              f"box offset {bf16['offset']:.5f} | {jpeg['offset']:.5f}")
    print("FAN (calibrated random weights): heatmap mean change, landmarks moved (heatmap px): bf16 | JPEG-95")
    for i, crop in enumerate(crops):
        bf16, jpeg = fan_deviations(fan, crop)
        print(f"  crop {i}: heatmap {bf16['heatmap']:.4f} | {jpeg['heatmap']:.4f}; "
              f"landmarks {bf16['landmarks']:.2f} | {jpeg['landmarks']:.2f}")


if __name__ == "__main__":
    main()
