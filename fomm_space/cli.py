"""Command line: ``python -m fomm_space animate|crop|models``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .device import PRECISIONS
from .errors import FommError
from .faces import DETECTORS
from .options import DEFAULTS, AnimationOptions, options_from
from .compose.paste import UPSCALERS
from .video import ENCODERS
from .registry import DEFAULT_MODEL, FAMILY_TITLES, MODELS


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", choices=list(MODELS), default=None,
                       help=f"published checkpoint to download from the Hub (default {DEFAULT_MODEL}; tps-* are "
                            "TPSMM models; see the models command)")
    group.add_argument("--config", help="config YAML of a local checkpoint (see config/)")
    group.add_argument("--checkpoint", help="local .pth.tar checkpoint (needs --config or --model)")
    group.add_argument("--repo-id", help="Hub repository holding the checkpoint (or FOMM_REPO_ID / TPSMM_REPO_ID)")
    group.add_argument("--revision", help="Hub revision to download (or FOMM_REVISION / TPSMM_REVISION)")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    group.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto = fp16 on CUDA, bf16 on CPUs with native bf16, else fp32")
    group.add_argument("--align-corners", action=argparse.BooleanOptionalAction, default=True,
                       help="grid_sample alignment the checkpoints were trained with (default); "
                            "--no-align-corners reproduces the authors' code on a current PyTorch")


def _add_crop_args(parser: argparse.ArgumentParser, *, toggle: bool = True) -> None:
    group = parser.add_argument_group("faces and video")
    if toggle:
        group.add_argument("--crop", action=argparse.BooleanOptionalAction, default=DEFAULTS.crop,
                           help="find and crop the faces in photo and video (default on); --no-crop uses "
                                "the centred squares")
    group.add_argument("--face-detector", choices=DETECTORS, default=DEFAULTS.face_detector,
                       help=f"face-alignment's face detector (default {DEFAULTS.face_detector}: S3FD, small and "
                            "turned faces anywhere; blazeface: close-up frontal faces in the frame's centre, far "
                            "faster; blazeface-back: the same further away)")
    group.add_argument("--crop-scale", type=float, default=DEFAULTS.crop_scale,
                       help=f"crop side / face box side (default {DEFAULTS.crop_scale:g}: hair and chin kept)")
    group.add_argument("--max-seconds", type=float, default=DEFAULTS.max_seconds,
                       help=f"longest driving clip used; longer ones are cut (default {DEFAULTS.max_seconds:g})")
    group.add_argument("--encoder", choices=ENCODERS, default=DEFAULTS.encoder,
                       help=f"video encoder (default {DEFAULTS.encoder}: NVIDIA's NVENC where the model runs on "
                            "a CUDA GPU that has it, else x264; nvenc falls back to x264 where it can't be opened)")


class _Parser(argparse.ArgumentParser):
    """argparse, its errors in one line on stderr (the flag and what to do), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    # As it was called: the installed `fomm-space` command, or `python -m fomm_space`.
    called = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    prog = called if called and called not in ("__main__.py", "-c") else "python -m fomm_space"
    parser = _Parser(prog=prog, description="First Order Motion Model: animate a photo by a video.")
    sub = parser.add_subparsers(dest="command", required=True)

    animate = sub.add_parser("animate", help="animate a photo by a driving video")
    animate.add_argument("--source", required=True, help="photo to animate (PNG, JPEG, ...)")
    animate.add_argument("--driving", required=True, help="video whose motion is transferred")
    animate.add_argument("--output", required=True, help="mp4 to write (H.264, with the driving sound)")
    animate.add_argument("--overlay", help="also write a keypoint-overlay mp4 here")
    animate.add_argument("--preview", help="also write the cropped photo with its keypoints here (.png)")
    motion = animate.add_argument_group("motion")
    motion.add_argument("--relative", action=argparse.BooleanOptionalAction, default=DEFAULTS.relative,
                        help="relative motion from the reference frame (default on)")
    motion.add_argument("--adapt-scale", action=argparse.BooleanOptionalAction, default=DEFAULTS.adapt_scale,
                        help="adapt the movement scale to the face sizes (default on)")
    motion.add_argument("--best-frame", type=int, default=DEFAULTS.best_frame, metavar="N",
                        help="use driving frame N as the reference; animate forwards and backwards from it")
    motion.add_argument("--find-best-frame", action=argparse.BooleanOptionalAction,
                        default=DEFAULTS.find_best_frame,
                        help="use the driving frame whose face pose is closest to the photo's as the reference")
    motion.add_argument("--avd", action=argparse.BooleanOptionalAction, default=DEFAULTS.avd,
                        help="TPSMM models only: animation via disentanglement (the driving pose on the photo's "
                             "identity) instead of relative or absolute motion")
    _add_crop_args(animate)
    animate.add_argument("--ai-mark", action=argparse.BooleanOptionalAction, default=DEFAULTS.ai_mark,
                         help='stamp "AI-generated" on the video (default on)')
    output = animate.add_argument_group("output")
    output.add_argument("--paste-back", action=argparse.BooleanOptionalAction, default=DEFAULTS.paste_back,
                        help="put the animated face back into the whole photo: the video has the photo's size "
                             "(default on where the photo is larger than the model's frames)")
    output.add_argument("--upscale", choices=UPSCALERS, default=None,
                        help=f"how the face is enlarged for paste-back (default {DEFAULTS.upscale}: sharp)")
    output.add_argument("--smooth", type=float, default=DEFAULTS.smoothing, metavar="S",
                        help="steady the driving keypoints: 0 = off (default, the authors' behaviour) to 1")
    motion.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                        help="driving frames per forward pass (default per device)")
    _add_model_args(animate)

    crop = sub.add_parser("crop", help="write the face crop of a video (the input FOMM expects)")
    crop.add_argument("--input", required=True, help="video to crop")
    crop.add_argument("--output", required=True, help="mp4 to write (with the input's sound)")
    crop.add_argument("--size", type=int, default=256, help="side of the square output in pixels (default 256)")
    crop.add_argument("--device", default=None, help="device of the face detector (default: best available)")
    _add_crop_args(crop, toggle=False)

    sub.add_parser("models", help="list the published models")
    return parser


def _fail(message: str, code: int = 1) -> int:
    print("error: " + " ".join(message.split()), file=sys.stderr)  # always one line
    return code


def _animate(args: argparse.Namespace) -> int:
    from .model import load_model
    from .pipeline import animate_files

    if args.upscale is not None and not args.paste_back:
        return _fail("--upscale only applies when the face is pasted back into the photo; "
                     "drop --upscale or --no-paste-back.", 2)
    options = options_from(vars(args))
    if args.checkpoint is None and args.config is not None:
        return _fail("--config needs --checkpoint (or leave both out and use --model).", 2)
    if args.avd:  # before any download: the family is in the registry or the config
        from .families import read_config

        family = read_config(args.config).family if args.config else \
            MODELS[args.model or DEFAULT_MODEL].family
        if family != "tpsmm":
            return _fail(f"--avd needs a TPSMM model (tps-*); this one is {family.upper()}. Drop --avd.", 2)
    model = load_model(args.model, config=args.config, checkpoint=args.checkpoint, device=args.device,
                       precision=args.precision, align_corners=args.align_corners, repo_id=args.repo_id,
                       revision=args.revision)
    if args.avd and not model.has_avd:
        return _fail(f"--avd needs a TPSMM checkpoint with an AVD network; {model.name} has none. Drop --avd.", 2)
    with _ProgressBars() as progress:
        report = animate_files(model, args.source, args.driving, args.output, options=options,
                               overlay=args.overlay, preview=args.preview, progress=progress)
    _note_truncation(report.truncated, options)
    extra = [str(p) for p in (report.overlay, report.preview) if p is not None]
    print(f"wrote {report.output}" + "".join(f" and {p}" for p in extra) + f": {report.summary()}")
    return 0


def _crop(args: argparse.Namespace) -> int:
    from .device import select_device
    from .pipeline import crop_video_file

    if args.size < 16 or args.size > 2048:
        return _fail(f"--size must be between 16 and 2048 pixels, got {args.size}.", 2)
    options = options_from(vars(args))
    with _ProgressBars() as progress:
        report = crop_video_file(args.input, args.output, size=(args.size, args.size), options=options,
                                 device=str(select_device(args.device)), progress=progress)
    _note_truncation(report.truncated, options)
    b = report.box
    print(f"wrote {report.output}: {report.frames} frames at {report.fps:g} fps, crop box "
          f"x={b.left:.0f} y={b.top:.0f} size={b.width:.0f}")
    return 0


def _note_truncation(truncated: bool, options: AnimationOptions) -> None:
    if truncated:
        print(f"note: the driving video is longer than {options.max_seconds:g} s; it was cut there.",
              file=sys.stderr)


class _ProgressBars:
    """A tqdm bar per pipeline stage, on stderr (hidden when stderr is not a terminal)."""

    def __init__(self):
        self._bar = None
        self._stage = None

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        from tqdm import tqdm

        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(unit="frame", desc=stage, total=total, file=sys.stderr, disable=None)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "_ProgressBars":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "models":
            for family, title in FAMILY_TITLES.items():
                print(f"{title}:")
                for spec in (s for s in MODELS.values() if s.family == family):
                    print(f"  {spec.name:11s} {spec.config:21s} {spec.description}")
            return 0
        return _crop(args) if args.command == "crop" else _animate(args)
    except FommError as e:
        return _fail(e.render("cli"))
    except KeyboardInterrupt:
        return _fail("interrupted; no output was written.", 130)
