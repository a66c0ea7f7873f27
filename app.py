"""fomm-space web demo: animate a photo by a driving video (Gradio Blocks), with the
First Order Motion Model or its successor, the Thin-Plate Spline Motion Model.

    python app.py [--share] [--server-name H] [--port P] [--model NAME]
                  [--config YAML --checkpoint PATH] [--device D]

On a Hugging Face Space (ZeroGPU included) the same file is the app: ``spaces`` is
imported before torch, and the GPU work runs inside ``spaces.GPU``.
"""

from __future__ import annotations

import os

spaces = None
if os.environ.get("SPACE_ID"):  # on a Space: ZeroGPU needs `spaces` before torch touches CUDA
    try:
        import spaces
    except ImportError:  # a Space without the package: plain CPU/GPU hardware
        pass

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr

from fomm_space import DEFAULTS, MODELS, AnimationOptions, FommError, ModelConfig, load_model
from fomm_space.frames import MAX_IMAGE_PIXELS
from fomm_space.paste import UPSCALERS
from fomm_space.pipeline import animate_files
from fomm_space.registry import DEFAULT_MODEL, FAMILY_TITLES

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
STAGES = {"faces": "Finding the face", "best frame": "Searching the best frame", "animating": "Animating"}
CONSENT = ("Only animate people who agreed to it, and never to deceive, harass or impersonate. "
           "Videos are marked *AI-generated* unless you switch the mark off; keep it when you share them.")


class Models:
    """Loaded models, one per name, created on first use (never at start-up), shared by
    all requests."""

    def __init__(self, args: argparse.Namespace, local: dict[str, tuple[str, str]]):
        self.args = args
        self.local = local  # name -> (config, checkpoint) of the models given on the command line
        self._lock = threading.Lock()
        self._models: dict[str, object] = {}

    def get(self, name: str):
        with self._lock:
            if name not in self._models:
                if name in self.local:
                    config, checkpoint = self.local[name]
                    self._models[name] = load_model(config=config, checkpoint=checkpoint, device=self.args.device)
                else:
                    self._models[name] = load_model(name, device=self.args.device)
            return self._models[name]


class Outputs:
    """Per-request output folders under one root, deleted after ``keep_s`` seconds.

    The videos are written inside Gradio's cache, so Gradio serves them without a copy;
    uploads there are swept by Gradio itself (``delete_cache``). A failed request's
    folder is deleted at once.
    """

    def __init__(self, root: Path, keep_s: float):
        self.root = root
        self.keep_s = keep_s
        self._lock = threading.Lock()

    def new(self) -> Path:
        self.sweep()
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="run-", dir=self.root))

    def sweep(self) -> int:
        """Delete the folders older than ``keep_s``; returns how many."""
        if not self.root.is_dir():
            return 0
        cutoff, removed = time.time() - self.keep_s, 0
        with self._lock:
            for folder in self.root.glob("run-*"):
                try:
                    if folder.stat().st_mtime < cutoff:
                        shutil.rmtree(folder, ignore_errors=True)
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed

    @staticmethod
    def discard(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)


class PhotoInput(gr.Image):
    """``gr.Image`` that hands over the uploaded file untouched (we read it ourselves,
    EXIF, 16-bit and size limits included) and turns a file that is no image into a
    clear message instead of a server error."""

    is_template = True  # rendered by gr.Image's frontend; construct with type="filepath", image_mode=None

    def preprocess(self, payload):
        from PIL import Image, UnidentifiedImageError

        try:
            return super().preprocess(payload)
        except Image.DecompressionBombError as e:
            raise gr.Error(f"The source photo has far more pixels than the limit of {MAX_IMAGE_PIXELS // 1_000_000} "
                           "megapixels. Scale it down and try again.") from e
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise gr.Error("The source is not an image that can be read; use a PNG or JPEG photo.") from e


def _on_gpu(fn):
    """``spaces.GPU`` on a ZeroGPU Space; the function itself everywhere else."""
    return spaces.GPU(duration=180)(fn) if spaces is not None else fn


def build_demo(args: argparse.Namespace) -> gr.Blocks:
    keep_s = args.keep_minutes * 60
    outputs_root = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio") / "fomm-space"
    runs = Outputs(outputs_root, keep_s)
    short = {"fomm": "FOMM", "tpsmm": "TPSMM"}
    local: dict[str, tuple[str, str]] = {}
    if args.checkpoint:
        families, choices = {}, []
        for config, checkpoint in zip(args.config, args.checkpoint):
            try:
                family = ModelConfig.from_yaml(config).family
            except FommError as e:
                raise SystemExit(f"error: {e}") from e
            name = Path(checkpoint).name
            name = name if name not in local else f"{name} ({len(local) + 1})"
            local[name] = (config, checkpoint)
            families[name] = family
            choices.append((f"{short[family]} · {name} (local)", name))
    else:
        # Grouped by family, oldest first; the label names the family.
        choices = [(f"{short[spec.family]} · {spec.name}: {spec.description}", spec.name)
                   for family in FAMILY_TITLES for spec in MODELS.values() if spec.family == family]
        families = {spec.name: spec.family for spec in MODELS.values()}
    default_model = choices[0][1] if local else (args.model or DEFAULT_MODEL)
    models = Models(args, local)

    @_on_gpu
    def animate(source: str | None, driving: str | None, relative: bool, adapt_scale: bool, crop_faces: bool,
                find_best_frame: bool, model: str, crop_scale: float = DEFAULTS.crop_scale,
                max_seconds: float = DEFAULTS.max_seconds, ai_mark: bool = DEFAULTS.ai_mark,
                paste_back: bool = DEFAULTS.paste_back, smoothing: float = DEFAULTS.smoothing,
                upscale: str = DEFAULTS.upscale, avd: bool = DEFAULTS.avd, progress=gr.Progress(track_tqdm=True)):
        """Animate the face in `source` (a photo) by the motion of `driving` (a video).

        Returns the animated video (with the driving sound), the keypoint-overlay video
        (source | driving | result) and a status line.
        """
        if not source:
            raise gr.Error("Please give a source photo (upload, webcam or paste).")
        if not driving:
            raise gr.Error("Please give a driving video (upload or webcam).")
        if avd and families[model] != "tpsmm":
            raise gr.Error("The AVD mode exists only for TPSMM models; untick it or choose a TPSMM model.")
        options = AnimationOptions(relative=bool(relative), adapt_scale=bool(adapt_scale), crop=bool(crop_faces),
                                   find_best_frame=bool(find_best_frame), crop_scale=float(crop_scale),
                                   max_seconds=float(max_seconds), ai_mark=bool(ai_mark),
                                   paste_back=bool(paste_back), smoothing=float(smoothing), upscale=str(upscale),
                                   avd=bool(avd))
        out_dir = runs.new()
        try:
            progress(0, desc=f"Loading the {model} model")
            m = models.get(model)
            report = animate_files(
                m, source, driving, out_dir / "animation.mp4", options=options, overlay=out_dir / "keypoints.mp4",
                progress=lambda stage, done, total: progress((done, total), desc=STAGES.get(stage, stage),
                                                             unit="frames"))
        except FommError as e:
            runs.discard(out_dir)
            raise gr.Error(str(e)) from e
        except BaseException:
            runs.discard(out_dir)
            raise
        return str(report.output), str(report.overlay), report.summary()

    with gr.Blocks(title="First Order Motion Model", delete_cache=(max(60, keep_s // 4), keep_s)) as demo:
        gr.Markdown("# First Order Motion Model\n"
                    "Animate a photo with the motion of a video: the First Order Motion Model (Siarohin et al., "
                    "NeurIPS 2019) or its successor, the Thin-Plate Spline Motion Model (Zhao & Zhang, CVPR 2022). "
                    "Give a photo and a driving video; the faces are found and cropped, the motion is "
                    "transferred, and you get the video with the driving sound and a view of the tracked "
                    f"keypoints.\n\n**{CONSENT}**")
        with gr.Row():
            source = PhotoInput(type="filepath", image_mode=None, label="Source photo", height=360,
                                sources=["upload", "webcam", "clipboard"], elem_id="source")
            driving = gr.Video(label="Driving video", sources=["upload", "webcam"], height=360, elem_id="driving")
        with gr.Row():
            model = gr.Dropdown(choices, value=default_model, label="Model", elem_id="model")
            relative = gr.Checkbox(value=DEFAULTS.relative, label="Relative motion")
            adapt_scale = gr.Checkbox(value=DEFAULTS.adapt_scale, label="Adapt movement scale")
            crop_faces = gr.Checkbox(value=DEFAULTS.crop, label="Crop faces")
            find_best_frame = gr.Checkbox(value=DEFAULTS.find_best_frame, label="Find best frame")
            paste_back = gr.Checkbox(value=DEFAULTS.paste_back, label="Paste back into the photo",
                                     elem_id="paste-back")
            avd = gr.Checkbox(value=DEFAULTS.avd, label="AVD mode (TPSMM)", elem_id="avd",
                              visible=families.get(default_model) == "tpsmm",
                              info="the driving pose on the photo's identity, instead of relative motion")
        with gr.Accordion("Advanced", open=False):
            crop_scale = gr.Slider(1.0, 4.0, value=DEFAULTS.crop_scale, step=0.1, label="Crop scale",
                                   info="crop side / face box side; larger keeps more hair and shoulders")
            max_seconds = gr.Slider(1, 300, value=DEFAULTS.max_seconds, step=1, label="Max seconds",
                                    info="longer driving videos are cut here")
            smoothing = gr.Slider(0.0, 1.0, value=DEFAULTS.smoothing, step=0.05, label="Keypoint smoothing",
                                  info="0 = off (as the authors); higher = steadier, less jitter")
            upscale = gr.Radio(list(UPSCALERS), value=DEFAULTS.upscale, label="Face upscaling for paste-back",
                               interactive=DEFAULTS.paste_back, elem_id="upscale")
            ai_mark = gr.Checkbox(value=DEFAULTS.ai_mark, label='Mark the video "AI-generated"')
        button = gr.Button("Animate", variant="primary", elem_id="animate")
        with gr.Row():
            result = gr.Video(label="Animation", height=360, elem_id="result")
            overlay = gr.Video(label="Keypoints: source | driving | result", height=360, elem_id="overlay")
        status = gr.Textbox(label="Status", interactive=False, elem_id="status")
        inputs = [source, driving, relative, adapt_scale, crop_faces, find_best_frame, model, crop_scale,
                  max_seconds, ai_mark, paste_back, smoothing, upscale, avd]
        outputs = [result, overlay, status]
        button.click(animate, inputs, outputs, api_name="animate")
        # Upscaling only applies to paste-back.
        paste_back.change(lambda on: gr.Radio(interactive=on), paste_back, upscale, api_visibility="private")
        # The AVD mode only exists for TPSMM models.
        model.change(lambda name: gr.Checkbox(visible=True) if families.get(name) == "tpsmm"
                     else gr.Checkbox(visible=False, value=False), model, avd, api_visibility="private")
        if (EXAMPLES / "face.png").exists():
            gr.Examples(
                [[str(EXAMPLES / "face.png"), str(EXAMPLES / clip), True, True, False, False, default_model]
                 for clip in ("nod.mp4", "talk.mp4")],
                inputs[:7], outputs, fn=animate, cache_examples=True, cache_mode="lazy",
                label="Examples (drawn by this project, CC0; pre-cropped, so face cropping is off)")
    demo.fomm_runs = runs  # for tests and operators: where results live, and their sweep
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="fomm-space web demo")
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument("--server-name", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (0.0.0.0 for the whole network)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--model", choices=list(MODELS), default=None,
                        help=f"model selected at start (default {DEFAULT_MODEL}); downloaded on first use")
    parser.add_argument("--config", action="append", default=[],
                        help="config YAML of a local checkpoint (repeat with --checkpoint for more models)")
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="local .pth.tar checkpoint (works offline); one per --config, in the same order")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    parser.add_argument("--concurrency", type=int, default=1, help="animations run at once (default 1)")
    parser.add_argument("--keep-minutes", type=float, default=60,
                        help="uploads and results are deleted after this many minutes (default 60)")
    args = parser.parse_args(argv)
    if len(args.config) != len(args.checkpoint):
        parser.error("--config and --checkpoint go together, one of each per model")
    if args.concurrency < 1 or args.keep_minutes <= 0:
        parser.error("--concurrency must be at least 1 and --keep-minutes positive")
    return args


def launch(demo: gr.Blocks, args: argparse.Namespace, **kwargs):
    """Queue (bounded concurrency) and serve."""
    return demo.queue(default_concurrency_limit=args.concurrency, max_size=32).launch(
        server_name=args.server_name, server_port=args.port, share=args.share, **kwargs)


if __name__ == "__main__":
    cli_args = parse_args()
    launch(build_demo(cli_args), cli_args)
