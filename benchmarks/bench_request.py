"""The whole request as a user makes it, timed by stage, beside the engine alone.

    python benchmarks/bench_request.py [--seconds 10] [--device cpu|cuda] [--find-best-frame]
                                       [--no-crop] [--precision auto] [--repeat N]

Makes its own inputs: a ``--seconds`` 1280x720 30-fps clip with sound (ffmpeg's test
pattern and a tone) and a 1280x960 photo. The model is vox-256 with random weights
(BatchNorm calibrated, as in bench_engine.py); the face stages run face-alignment's real
networks (S3FD and FAN) with random weights, written to a temporary TORCH_HOME. Those
find no real faces, so where they find none the later stages are handed a fixed box (the
centred square), and the report says how often that happened.

Stages (each timed on its own, then the whole request through ``animate_files`` as the
CLI and the app call it): model load; the photo's face; the driving-face track; the
best-frame search (``--find-best-frame``); decoding + cropping; the engine; composition
(paste-back into the photo, the AI mark, the keypoint overlay); encoding. The ratio
whole request / engine alone on the same frames is what issue 12 bounds. With
``--repeat N`` the engine alone and the whole request run N times in turn, and the
median ratio is reported with each pair's (a shared machine's speed drifts by tens of
percent within minutes: a pair run back to back shares it).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import random_model  # noqa: E402
from bench_live import FixedWhereNone, photo_1280x960, random_face_detector  # noqa: E402

from fomm_space import DEFAULTS  # noqa: E402
from fomm_space.config import CONFIG_DIR  # noqa: E402
from fomm_space.families import read_config  # noqa: E402
from fomm_space.crop import center_box, stable_box  # noqa: E402
from fomm_space.frames import to_uint8  # noqa: E402
from fomm_space.model import AnimationModel  # noqa: E402
from fomm_space.compose import Composer  # noqa: E402
from fomm_space.faces import face_precision  # noqa: E402
from fomm_space.pipeline import (animate_files, cropped_frames, driving_track, find_best_frame,  # noqa: E402
                                 photo_crop)
from fomm_space.video import VideoWriter, ffmpeg_exe, probe, video_encoder  # noqa: E402


def cpu_name() -> str:
    """The CPU's model name and whether it computes bf16 natively."""
    from fomm_space.device import cpu_has_native_bf16

    name = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {'native' if cpu_has_native_bf16() else 'no native'} bf16"


def make_inputs(folder: Path, seconds: float) -> tuple[Path, Path]:
    from PIL import Image

    clip = folder / "clip.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:"
                    f"duration={seconds}", "-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip)], check=True)
    photo = folder / "photo.png"
    Image.fromarray(photo_1280x960(np.random.default_rng(0))).save(photo)
    return photo, clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--find-best-frame", action="store_true")
    parser.add_argument("--no-crop", action="store_true", help="face cropping off (centred squares)")
    parser.add_argument("--face-detector", default=DEFAULTS.face_detector, help="sfd, blazeface or blazeface-back")
    parser.add_argument("--repeat", type=int, default=1, help="engine-alone / whole-request pairs to run")
    args = parser.parse_args()
    options = dataclasses.replace(DEFAULTS, crop=not args.no_crop, find_best_frame=args.find_best_frame,
                                  max_seconds=max(args.seconds, 1.0), face_detector=args.face_detector)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    stages: dict[str, float] = {}

    def timed(name, fn, *a, **kw):
        sync()
        t0 = time.perf_counter()
        out = fn(*a, **kw)
        sync()
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - t0
        return out

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo_path, clip = make_inputs(tmp, args.seconds)
        config = read_config(CONFIG_DIR / "vox-256.yaml")
        networks = random_model(config)
        model = timed("model load", AnimationModel, networks, config, device=args.device, precision=args.precision)
        detector = FixedWhereNone(random_face_detector(args.device, options.face_detector,
                                                       face_precision(model.dtype))) \
            if options.crop or options.find_best_frame else None
        if detector is not None:  # first runs (once a process, as the model load): FAN's takes seconds
            timed("face networks' first run", detector.detector.warm_up)
        from fomm_space.frames import read_image

        photo = read_image(str(photo_path))
        info = probe(clip)
        max_frames = int(options.max_seconds * info.fps)
        total = min(info.frame_count or max_frames, max_frames)
        _, src, paste, src_face = timed("photo face", photo_crop, photo, options, detector, model.size)
        track = None
        if options.crop:
            track, total = timed("driving-face track", driving_track, clip, info, max_frames, detector)
            box = stable_box(track, options.crop_scale)
        else:
            box = center_box(info.size[1], info.size[0])
        if options.find_best_frame:
            timed("best-frame search", find_best_frame, src,
                  lambda start, stop, step: cropped_frames(clip, info, box, model.size, min(stop, max_frames), step, start),
                  total, detector, source_face=src_face,
                  faces=(lambda i: track.box_at(i).relative_to(box, model.size)) if track else None)
        frames = timed("decode + crop", lambda: list(cropped_frames(clip, info, box, model.size, max_frames)))
        results, kp = [], []
        source_kp = model.detect_keypoints([src])["value"][0].cpu().numpy()

        def engine():
            for batch in model.stream(src, frames, relative=True, adapt_scale=True):
                results.extend(to_uint8(batch.frames))
                kp.extend(zip(batch.driving_keypoints, batch.keypoints))
        timed("engine", engine)

        composer = Composer(src, source_kp, paste, options.ai_mark)
        composed = []

        def compose():  # the composer's arrays are reused: copies kept for the encoding stage
            for result, frame, (kd, kn) in zip(results, frames, kp):
                composed.append((composer.frame(result).copy(), composer.panel(frame, kd, result, kn).copy()))
        timed("composition", compose)

        encoder = video_encoder(options.encoder, str(model.device))

        def encode():  # as the request does: with the encoder it picks
            with VideoWriter(tmp / "a.mp4", info.fps, audio_from=clip, audio_seconds=max_frames / info.fps,
                             encoder=encoder) as a, VideoWriter(tmp / "k.mp4", info.fps, encoder=encoder) as k:
                for main_frame, panel in composed:
                    a.write(main_frame)
                    k.write(panel)
        timed("encoding", encode)
        pairs = []
        for r in range(max(1, args.repeat)):
            if r:  # the engine alone again, just before this whole request
                sync()
                t0 = time.perf_counter()
                for _ in model.stream(src, frames, relative=True, adapt_scale=True):
                    pass
                sync()
                engine_s = time.perf_counter() - t0
            else:
                engine_s = stages["engine"]
            sync()
            t0 = time.perf_counter()
            report = animate_files(model, photo_path, clip, tmp / "out.mp4", options=options,
                                   overlay=tmp / "kp.mp4", detector=detector)
            sync()
            pairs.append((time.perf_counter() - t0, engine_s))
        pairs.sort(key=lambda p: p[0] / p[1])
        whole, engine_s = pairs[len(pairs) // 2]
    device = torch.cuda.get_device_name() if model.device.type == "cuda" else cpu_name()
    print(f"vox-256 random weights, {model.device} ({device}), {model.precision}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.seconds:g}-s 1280x720 {info.fps:g}-fps clip with sound, "
          f"1280x960 photo; crop {'on' if options.crop else 'off'}, best frame "
          f"{'searched' if options.find_best_frame else 'off'}, paste-back, mark, overlay; encoded with {report.encoder}")
    if detector is not None:
        print(f"face networks with random weights ({options.face_detector} and FAN, "
              f"{detector.detector.precision}): {detector.calls['detect']} detections "
              f"({detector.fixed['detect']} found nothing and got the fixed box), {detector.calls['landmarks']} "
              f"landmark runs ({detector.fixed['landmarks']} fixed), {detector.calls['coarse landmarks']} coarse "
              f"(bf16) ones ({detector.fixed['coarse landmarks']} fixed)")
    for name, seconds in stages.items():
        once = ("model load", "face networks' first run", "photo face")
        per = f", {1000 * seconds / len(frames):.1f} ms a frame" if name not in once else ""
        print(f"  {name:20s} {seconds:7.2f} s{per}")
    if len(pairs) > 1:
        print("pairs (whole request / engine alone): " + ", ".join(f"{w:.1f}/{e:.1f} s = {w / e:.2f}x"
                                                                  for w, e in pairs) + "; the median below")
    print(f"whole request (animate_files, {report.frames} frames, model load and first runs excluded): "
          f"{whole:.1f} s = "
          f"{report.frames / whole:.2f} frames/s; engine alone on the same frames {engine_s:.1f} s = "
          f"{len(frames) / engine_s:.2f} frames/s; request / engine {whole / engine_s:.2f}x")


if __name__ == "__main__":
    main()
