"""The one-shot GPU check: every GPU figure the README and docs/benchmarks.md ask for, in
one table, within a time budget (8 minutes by default).

    python benchmarks/gpu_check.py [--device cuda] [--budget 480] [--dry-run]

Whoever has a GPU runs this first. In order (each section skipped once the budget is
spent, and said so):

1. parity on the device, fp32: FOMM's three recorded cases (the authors' outputs, within
   1e-4) and TPSMM's two in its three modes (within 3e-3, mean 2e-5); fp16 PSNR against
   the recorded output (40 dB or more);
2. the engine (vox-256, random weights calibrated as in bench_engine.py) at fp16 and
   bf16, batch 8, 16 and 32: frames/s, the ratio to the authors' frame-by-frame loop,
   PSNR against exact fp32, peak GPU memory; TPSMM (tps-vox-256) at fp16, batch 16;
3. the whole request (animate_files: a 10-s 1280x720 clip with sound pasted back into a
   1280x960 photo with the overlay; face cropping off, since face-alignment's weights
   can't be downloaded there) with x264 and with NVENC (where the GPU has none, it says
   so), beside the engine alone: frames/s against 150;
4. a live frame on the server (batch 1, paste-back into the photo): ms against 15.

``--dry-run`` runs every section on the CPU at toy sizes (the tiny test models, a few
frames) in seconds: the suite runs it, so that the script works when a GPU comes.
Exits 1 if a check that has a target misses it (not in a dry run).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_engine import psnr, random_model, reference_loop, smooth_noise, timed  # noqa: E402
from benchmarks.bench_live import photo_1280x960  # noqa: E402
from benchmarks.bench_request import make_inputs  # noqa: E402
import fomm_space  # noqa: E402
from fomm_space import AnimationModel, AnimationOptions, ModelConfig  # noqa: E402
from fomm_space.config import CONFIG_DIR  # noqa: E402
from fomm_space.families import read_config  # noqa: E402

FOMM_CASES = {"tiny-vox": False, "tiny-mgif": False, "tiny-vox-aligned": True}  # name -> align_corners
TPSMM_CASES = ("tiny-tps-vox", "tiny-tps-mgif")
TPSMM_MODES = {"standard": dict(relative=False), "relative": dict(relative=True), "avd": dict(avd=True)}
PARITY = ROOT / "tests" / "data" / "parity"
TPSMM_PARITY = ROOT / "tests" / "data" / "tpsmm" / "parity"


@dataclasses.dataclass
class Check:
    """The table being made, and the time left for it."""

    device: str
    dry_run: bool
    deadline: float
    rows: list[tuple[str, str, str, str]] = dataclasses.field(default_factory=list)

    def row(self, what: str, figure: str, target: str = "", ok: bool | None = None) -> None:
        self.rows.append((what, figure, target, "" if ok is None else ("yes" if ok else "NO")))
        print(f"  {what}: {figure}" + (f" (target {target}: {'met' if ok else 'MISSED'})" if target else ""),
              flush=True)

    def section(self, name: str, run: Callable[["Check"], None]) -> None:
        print(f"{name}:", flush=True)
        if time.monotonic() > self.deadline:
            self.row(name, "skipped: the time budget is spent")
            return
        try:
            run(self)
        except Exception as e:  # noqa: BLE001 - one failing section leaves the others to run
            self.row(name, f"failed: {type(e).__name__}: {str(e)[:200]}", "runs", False)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def table(self) -> str:
        head = ("check", "figure", "target", "met")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(4)]
        lines = [" | ".join(h.ljust(w) for h, w in zip(head, widths)), "-+-".join("-" * w for w in widths)]
        lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in self.rows]
        return "\n".join(lines)


def parity(check: Check) -> None:
    for name, aligned in FOMM_CASES.items():
        folder = PARITY / name
        model = fomm_space.load_model(config=folder / "config.yaml", checkpoint=folder / "checkpoint.pth.tar",
                                      device=check.device, precision="fp32", align_corners=aligned)
        expected = np.load(folder / "expected.npz")
        out = model.animate(expected["source"], expected["driving"])
        error = float(np.abs(out - expected["prediction_rel1_adapt1"]).max())
        check.row(f"FOMM parity {name}, fp32", f"max error {error:.1e}", "<= 1e-4", error <= 1e-4)
    for name in TPSMM_CASES:
        folder = TPSMM_PARITY / name
        model = fomm_space.load_model(config=folder / "config.yaml", checkpoint=folder / "checkpoint.pth.tar",
                                      device=check.device, precision="fp32")
        expected = np.load(folder / "expected.npz")
        for mode, kwargs in TPSMM_MODES.items():
            error = np.abs(model.animate(expected["source"], expected["driving"], **kwargs)
                           - expected[f"prediction_{mode}"])
            ok = error.max() <= 3e-3 and error.mean() <= 2e-5
            check.row(f"TPSMM parity {name} {mode}, fp32", f"max {error.max():.1e}, mean {error.mean():.1e}",
                      "<= 3e-3, 2e-5", bool(ok))
    reduced = "fp16" if check.device.startswith("cuda") else "bf16"
    for folder, key in ((PARITY / "tiny-vox", "prediction_rel1_adapt1"),
                        (TPSMM_PARITY / "tiny-tps-vox", "prediction_relative")):
        model = fomm_space.load_model(config=folder / "config.yaml", checkpoint=folder / "checkpoint.pth.tar",
                                      device=check.device, precision=reduced)
        expected = np.load(folder / "expected.npz")
        quality = psnr(model.animate(expected["source"], expected["driving"]), expected[key])
        judged = reduced == "fp16"  # the GPU's precision; the CPU's bf16 is only run, in a dry run
        check.row(f"{reduced} PSNR {folder.name}", f"{quality:.1f} dB", ">= 40 dB" if judged else "",
                  quality >= 40 if judged else None)


def engine_config(check: Check, family: str) -> tuple[str, ModelConfig]:
    """(its name, the config) of the family's face model: the published one, or in a dry
    run the tiny test model."""
    if check.dry_run:
        folder = PARITY / "tiny-vox" if family == "fomm" else TPSMM_PARITY / "tiny-tps-vox"
        return folder.name, read_config(folder / "config.yaml")
    name = "vox-256" if family == "fomm" else "tps-vox-256"
    return name, read_config(CONFIG_DIR / f"{name}.yaml")


def engine(check: Check) -> None:
    frames = 4 if check.dry_run else 256
    batches = (2,) if check.dry_run else (8, 16, 32)
    precisions = ("bf16",) if check.dry_run else ("fp16", "bf16")
    for family in ("fomm", "tpsmm"):
        model_name, config = engine_config(check, family)
        networks = random_model(config)
        rng = np.random.default_rng(1)
        source = smooth_noise(rng, 1, config.size[0])[0]
        driving = smooth_noise(rng, frames, config.size[0])
        exact = AnimationModel(networks, config, device=check.device, precision="fp32")
        reference = exact.animate(source, driving)
        reference_loop(networks, exact.device, source, driving[:2])  # warm-up
        _, t_authors = timed(lambda: reference_loop(networks, exact.device, source, driving), check.sync)
        name = f"{family.upper()} {model_name}"
        check.row(f"{name} authors' loop", f"{frames / t_authors:.1f} frames/s")
        for precision in precisions if family == "fomm" else precisions[:1]:
            model = AnimationModel(networks, config, device=check.device, precision=precision)
            for batch in batches if family == "fomm" else batches[len(batches) // 2:][:1]:
                model.animate(source, driving[:batch], batch_size=batch)  # warm-up at the batch's shapes
                if check.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                out, t = timed(lambda: model.animate(source, driving, batch_size=batch), check.sync)
                peak = (f", {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
                        if check.device.startswith("cuda") else "")
                ratio = t_authors / t
                check.row(f"{name} engine {precision} batch {batch}",
                          f"{frames / t:.1f} frames/s, {ratio:.2f}x the loop, {psnr(out, reference):.1f} dB{peak}",
                          ">= 3x the loop" if precision == "fp16" else "", ratio >= 3 if precision == "fp16" else None)


def request(check: Check) -> None:
    from fomm_space.pipeline import animate_files

    _, config = engine_config(check, "fomm")
    precision = "fp16" if check.device.startswith("cuda") else "bf16"
    model = AnimationModel(random_model(config), config, device=check.device, precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo, clip = make_inputs(folder, 0.4 if check.dry_run else 10.0)
        for encoder in ("x264", "nvenc"):
            options = AnimationOptions(crop=False, encoder=encoder)
            animate_files(model, photo, clip, folder / "warm.mp4", options=dataclasses.replace(options, max_frames=8))
            t0 = time.perf_counter()
            report = animate_files(model, photo, clip, folder / "out.mp4", options=options,
                                   overlay=folder / "overlay.mp4")
            check.sync()
            fps = report.frames / (time.perf_counter() - t0)
            check.row(f"whole request, --no-crop, {encoder} asked", f"{fps:.1f} frames/s, encoded with "
                      f"{report.encoder}", ">= 150 frames/s" if not check.dry_run else "",
                      fps >= 150 if not check.dry_run else None)


def live(check: Check) -> None:
    _, config = engine_config(check, "fomm")
    precision = "fp16" if check.device.startswith("cuda") else "bf16"
    model = AnimationModel(random_model(config), config, device=check.device, precision=precision)
    rng = np.random.default_rng(0)
    camera = (smooth_noise(rng, 5 if check.dry_run else 60, 640) * 255).astype(np.uint8)[:, :480]
    options = dataclasses.replace(fomm_space.LIVE_DEFAULTS, crop=False, paste_back=True)
    session = fomm_space.LiveSession(model, photo_1280x960(rng), options)
    for frame in camera[:3]:
        session.push(frame)  # warm-up
    times = []
    for frame in camera:
        _, t = timed(lambda: session.push(frame), check.sync)
        times.append(1000 * t)
    session.close()
    median = statistics.median(times)
    check.row("live frame on the server, paste-back", f"{median:.1f} ms (median)",
              "<= 15 ms" if not check.dry_run else "", median <= 15 if not check.dry_run else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget", type=float, default=480, help="seconds for the whole check")
    parser.add_argument("--dry-run", action="store_true", help="on the CPU at toy sizes: does the script run?")
    args = parser.parse_args(argv)
    device = "cpu" if args.dry_run else args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("error: no CUDA device here; --dry-run checks the script on the CPU", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    print(f"GPU check on {device} ({name}), torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"
          + (" (dry run: toy sizes)" if args.dry_run else ""), flush=True)
    check = Check(device, args.dry_run, time.monotonic() + args.budget)
    for title, run in (("parity", parity), ("engine", engine), ("whole request", request), ("live", live)):
        check.section(title, run)
    print()
    print(check.table())
    missed = [r for r in check.rows if r[3] == "NO"]
    return 1 if missed and not args.dry_run else 0


if __name__ == "__main__":
    sys.exit(main())
