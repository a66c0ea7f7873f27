"""Command line: ``python -m fomm_space animate|models``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .device import PRECISIONS
from .errors import FommError
from .options import DEFAULTS, AnimationOptions
from .registry import DEFAULT_MODEL, MODELS


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", choices=list(MODELS), default=None,
                       help=f"published checkpoint to download from the Hub (default {DEFAULT_MODEL})")
    group.add_argument("--config", help="config YAML of a local checkpoint (see config/)")
    group.add_argument("--checkpoint", help="local .pth.tar checkpoint (needs --config or --model)")
    group.add_argument("--repo-id", help="Hub repository holding the checkpoints (or FOMM_REPO_ID)")
    group.add_argument("--revision", help="Hub revision to download (or FOMM_REVISION)")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    group.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto = fp16 on CUDA, bf16 on CPUs with native bf16, else fp32")
    group.add_argument("--align-corners", action=argparse.BooleanOptionalAction, default=True,
                       help="grid_sample alignment the checkpoints were trained with (default); "
                            "--no-align-corners reproduces the authors' code on a current PyTorch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fomm_space",
                                     description="First Order Motion Model: animate a photo by a video.")
    sub = parser.add_subparsers(dest="command", required=True)

    animate = sub.add_parser("animate", help="animate a photo by a driving video")
    animate.add_argument("--source", required=True, help="photo to animate (PNG, JPEG, ...)")
    animate.add_argument("--driving", required=True, help="video whose motion is transferred")
    animate.add_argument("--output", required=True, help="mp4 to write (H.264, with the driving sound)")
    animate.add_argument("--overlay", help="also write a keypoint-overlay mp4 here")
    motion = animate.add_argument_group("motion")
    motion.add_argument("--relative", action=argparse.BooleanOptionalAction, default=DEFAULTS.relative,
                        help="relative motion from the reference frame (default on)")
    motion.add_argument("--adapt-scale", action=argparse.BooleanOptionalAction, default=DEFAULTS.adapt_scale,
                        help="adapt the movement scale to the face sizes (default on)")
    motion.add_argument("--best-frame", type=int, default=DEFAULTS.best_frame, metavar="N",
                        help="use driving frame N as the reference; animate forwards and backwards from it")
    motion.add_argument("--no-crop", dest="crop", action="store_false", default=DEFAULTS.crop,
                        help="use the centred square of photo and video as they are")
    motion.add_argument("--max-seconds", type=float, default=DEFAULTS.max_seconds,
                        help=f"longest driving clip used; longer ones are cut (default {DEFAULTS.max_seconds:g})")
    motion.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                        help="driving frames per forward pass (default per device)")
    _add_model_args(animate)

    sub.add_parser("models", help="list the published models")
    return parser


def _fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _animate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .model import load_model
    from .pipeline import animate_files

    options = AnimationOptions(relative=args.relative, adapt_scale=args.adapt_scale, best_frame=args.best_frame,
                               crop=args.crop, max_seconds=args.max_seconds, batch_size=args.batch_size)
    if args.checkpoint is None and args.config is not None:
        return _fail("--config needs --checkpoint (or leave both out and use --model).", 2)
    model = load_model(args.model, config=args.config, checkpoint=args.checkpoint, device=args.device,
                       precision=args.precision, align_corners=args.align_corners, repo_id=args.repo_id,
                       revision=args.revision)
    with tqdm(unit="frame", desc="animating", file=sys.stderr, disable=None) as bar:
        def progress(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = animate_files(model, args.source, args.driving, args.output, options=options,
                               overlay=args.overlay, progress=progress)
    if report.truncated:
        print(f"note: the driving video is longer than {options.max_seconds:g} s; it was cut there.",
              file=sys.stderr)
    print(f"wrote {report.output}" + (f" and {report.overlay}" if report.overlay else "")
          + f": {report.summary()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "models":
            for spec in MODELS.values():
                print(f"{spec.name:11s} {spec.config:20s} {spec.description}")
            return 0
        return _animate(args)
    except FommError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted; no output was written.", 130)
