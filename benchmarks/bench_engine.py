"""Frames per second of FOMM (or TPSMM: ``--config config/tps-vox-256.yaml``) at vox-256
with random weights.

Compares the authors' way (one frame at a time, the full generator every frame, fp32,
PyTorch's default settings: on a GPU that computes convolutions in TF32) with the engine
at each precision, and reports PSNR against the engine's exact fp32 output.

    python benchmarks/bench_engine.py [--frames 24] [--rounds 3] [--device cpu] [--precisions auto fp32 bf16]
                                      [--config config/tps-vox-256.yaml] [--request]

``--request`` also times the whole request as the CLI makes it (``animate_files``: decode,
engine, paste-back into a 1280x960 photo, mark, overlay, encoding; face cropping off)
on a 640x360 clip of ``--frames`` frames, beside the engine alone on the same frames.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fomm_space.config import CONFIG_DIR, ModelConfig  # noqa: E402
from fomm_space.families import read_config  # noqa: E402
from fomm_space.model import DEFAULT_BATCH, FommModel  # noqa: E402


def smooth_noise(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, size, size, 3) float32 images of blurred noise: structure at several scales."""
    low = rng.random((n, 3, size // 16, size // 16), dtype=np.float32)
    x = torch.nn.functional.interpolate(torch.from_numpy(low), size=(size, size), mode="bicubic")
    x = x + 0.05 * torch.from_numpy(rng.standard_normal((n, 3, size, size), dtype=np.float32))
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def random_model(config: ModelConfig, seed: int = 0):
    """Random networks (either family) whose BatchNorm statistics are calibrated on
    images, so that the activations have realistic ranges (plain random BN statistics
    saturate the output). TPSMM's InstanceNorms need no calibration."""
    torch.manual_seed(seed)
    networks = config.build()
    images = torch.from_numpy(smooth_noise(np.random.default_rng(seed), 4, config.size[0])).permute(0, 3, 1, 2)
    for m in networks.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        networks.train()
        networks.keypoints(images)
        networks.eval()
        kp = networks.keypoints(images)
        networks.train()
        flipped = {k: v.flip(0) for k, v in kp.items()}
        networks.generate(networks.prepare(images), kp, flipped)
        if networks.has_avd:
            networks.avd_network(kp["value"], flipped["value"])
    return networks.eval()


def reference_loop(networks, dev: torch.device, source: np.ndarray, driving: np.ndarray) -> np.ndarray:
    """The authors' demo loop: per frame, keypoints and the whole generator (the source
    encoded again each time), relative motion with the hull scale, in fp32."""
    networks = networks.to(dev)
    out = []
    with torch.no_grad():
        src = torch.from_numpy(source).permute(2, 0, 1)[None].to(dev)
        drv = torch.from_numpy(driving).permute(0, 3, 1, 2).to(dev)
        kp_source = networks.keypoints(src)
        kp_initial = networks.keypoints(drv[:1])
        for i in range(drv.shape[0]):
            kp_driving = networks.keypoints(drv[i:i + 1])
            kp_norm = networks.transfer(kp_source, kp_driving, kp_initial, relative=True, adapt_scale=True,
                                        scale=None)
            pred = networks.generate(networks.prepare(src), kp_source, kp_norm)
            out.append(pred.permute(0, 2, 3, 1).cpu().numpy()[0])
    return np.stack(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def timed(fn, sync):
    sync()
    t0 = time.perf_counter()
    result = fn()
    sync()
    return result, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--device", default=None)
    parser.add_argument("--precisions", nargs="+", default=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; each method's best counts")
    parser.add_argument("--config", default=str(CONFIG_DIR / "vox-256.yaml"))
    parser.add_argument("--request", action="store_true", help="also time the whole request (files in and out)")
    args = parser.parse_args()

    config = read_config(args.config)
    networks = random_model(config)
    dev = FommModel(networks, config, device=args.device, precision="fp32").device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(1)
    source = smooth_noise(rng, 1, config.size[0])[0]
    driving = smooth_noise(rng, args.frames, config.size[0])

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {dev} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}, frames {args.frames}, config {Path(args.config).name}, "
          f"best of {args.rounds} rounds")
    reference_loop(networks, dev, source, driving[:2])  # warm-up
    models, results = {}, {}
    for precision in dict.fromkeys(["fp32", *args.precisions]):  # fp32 first: the PSNR reference
        try:
            models[precision] = FommModel(networks, config, device=dev, precision=precision)
        except Exception as e:  # noqa: BLE001 - a precision the device lacks is reported, not fatal
            results[precision] = f"skipped: {e}"
    batch = args.batch_size or DEFAULT_BATCH.get(dev.type, 4)
    for model in models.values():
        model.animate(source, driving[:batch], batch_size=args.batch_size)  # warm-up, at the batch's shapes
    # Rounds take turns, so that a machine whose speed drifts slows every method alike;
    # each method's best round counts.
    t_ref, times, peaks = float("inf"), dict.fromkeys(models, float("inf")), {}
    for _ in range(args.rounds):
        authors, t = timed(lambda: reference_loop(networks, dev, source, driving), sync)
        t_ref = min(t_ref, t)
        for precision, model in models.items():
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            out, t = timed(lambda: model.animate(source, driving, batch_size=args.batch_size), sync)
            times[precision] = min(times[precision], t)
            results[precision] = (model.precision, out)
            if dev.type == "cuda":
                peaks[precision] = f"   peak GPU memory {torch.cuda.max_memory_allocated(dev) / 2**20:.0f} MiB"
    fps_ref = args.frames / t_ref
    for precision in models:
        results[precision] += (args.frames / times[precision], peaks.get(precision, ""))
    reference = results["fp32"][1]
    print(f"{'frame-by-frame fp32 (authors)':34s} {fps_ref:8.2f} frames/s   1.00x   "
          f"PSNR vs engine fp32 {psnr(authors, reference):6.1f} dB")
    for precision in args.precisions:
        result = results[precision]
        if isinstance(result, str):
            print(f"{'engine ' + precision:34s} {result}")
            continue
        actual, out, fps, peak = result
        print(f"{'engine ' + precision + ' (' + actual + ')':34s} {fps:8.2f} frames/s  "
              f"{fps / fps_ref:5.2f}x   PSNR vs engine fp32 {psnr(out, reference):6.1f} dB{peak}")


    if args.request:
        first = next(p for p in args.precisions if p in models)  # the first precision this device has
        whole_request(models[first], args.frames, args.batch_size, sync)


def whole_request(model, frames: int, batch_size: int | None, sync) -> None:
    """The request through ``animate_files`` against the engine alone on its frames."""
    import tempfile

    from PIL import Image

    from fomm_space import AnimationOptions
    from fomm_space.crop import center_box, crop
    from fomm_space.pipeline import animate_files
    from fomm_space.video import VideoWriter, read_frames

    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo = (smooth_noise(rng, 1, 960)[0, :, :] * 255).astype(np.uint8)
        Image.fromarray(np.concatenate([photo, photo[:, :320]], axis=1)).save(folder / "photo.png")  # 1280x960
        clip = (smooth_noise(rng, frames, 640)[:, 140:500] * 255).astype(np.uint8)                   # 640x360
        with VideoWriter(folder / "clip.mp4", 25.0) as writer:
            for frame in clip:
                writer.write(frame)
        options = AnimationOptions(crop=False, batch_size=batch_size)
        t0 = time.perf_counter()
        report = animate_files(model, folder / "photo.png", folder / "clip.mp4", folder / "out.mp4",
                               options=options, overlay=folder / "overlay.mp4")
        sync()
        t_request = time.perf_counter() - t0
        src = crop(np.asarray(Image.open(folder / "photo.png").convert("RGB")), center_box(960, 1280), model.size)
        cropped = [crop(f, center_box(360, 640), model.size) for f in read_frames(folder / "clip.mp4")]
        _, t_engine = timed(lambda: model.animate(src, cropped, batch_size=batch_size), sync)
    print(f"whole request ({report.frames} frames, {report.size[0]}x{report.size[1]} pasted back, overlay, "
          f"{model.precision}): {report.frames / t_request:.2f} frames/s; engine alone on the same frames "
          f"{len(cropped) / t_engine:.2f} frames/s; request / engine time {t_request / t_engine:.2f}x")


if __name__ == "__main__":
    main()
