"""fomm-space web demo: animate a photo by a driving video (Gradio Blocks).

    python app.py [--share] [--server-name H] [--port P] [--model NAME | --config YAML --checkpoint PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

import gradio as gr

from fomm_space import DEFAULTS, MODELS, AnimationOptions, FommError, load_model
from fomm_space.pipeline import animate_files
from fomm_space.registry import DEFAULT_MODEL


class Models:
    """Loaded models, one per name, created on first use (never at start-up)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self._lock = threading.Lock()
        self._models: dict[str, object] = {}

    def get(self, name: str):
        with self._lock:
            if name not in self._models:
                a = self.args
                if a.checkpoint:
                    self._models[name] = load_model(config=a.config, checkpoint=a.checkpoint, device=a.device)
                else:
                    self._models[name] = load_model(name, device=a.device)
            return self._models[name]


def build_demo(args: argparse.Namespace) -> gr.Blocks:
    models = Models(args)
    local = bool(args.checkpoint)
    names = [Path(args.checkpoint).name] if local else list(MODELS)

    def animate(source, driving, relative, adapt_scale, model, progress=gr.Progress(track_tqdm=True)):
        if not source:
            raise gr.Error("Please give a source photo.")
        if not driving:
            raise gr.Error("Please give a driving video.")
        out_dir = Path(tempfile.mkdtemp(prefix="fomm-"))
        options = AnimationOptions(relative=relative, adapt_scale=adapt_scale, crop=False)
        try:
            m = models.get(model)
            report = animate_files(m, source, driving, out_dir / "animation.mp4", options=options,
                                   overlay=out_dir / "keypoints.mp4",
                                   progress=lambda stage, done, total: progress((done, total), desc=stage, unit="frames"))
        except FommError as e:
            raise gr.Error(str(e)) from e
        return str(report.output), str(report.overlay), report.summary()

    with gr.Blocks(title="First Order Motion Model") as demo:
        gr.Markdown("# First Order Motion Model\nAnimate a photo with the motion of a video. "
                    "Only animate people who agreed to it; the result is AI-generated.")
        with gr.Row():
            source = gr.Image(label="Source photo", type="filepath")
            driving = gr.Video(label="Driving video")
        with gr.Row():
            relative = gr.Checkbox(value=DEFAULTS.relative, label="Relative motion")
            adapt_scale = gr.Checkbox(value=DEFAULTS.adapt_scale, label="Adapt movement scale")
            model = gr.Dropdown(names, value=names[0] if local else DEFAULT_MODEL, label="Model")
        button = gr.Button("Animate", variant="primary")
        with gr.Row():
            result = gr.Video(label="Animation")
            overlay = gr.Video(label="Keypoints: source | driving | result")
        status = gr.Textbox(label="Status", interactive=False)
        button.click(animate, [source, driving, relative, adapt_scale, model], [result, overlay, status],
                     api_name="animate")
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="fomm-space web demo")
    parser.add_argument("--share", action="store_true", help="create a public share link")
    parser.add_argument("--server-name", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--config", help="config YAML of a local checkpoint")
    parser.add_argument("--checkpoint", help="local .pth.tar checkpoint")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if bool(args.config) != bool(args.checkpoint):
        parser.error("--config and --checkpoint go together")
    return args


if __name__ == "__main__":
    cli_args = parse_args()
    build_demo(cli_args).queue(default_concurrency_limit=1).launch(
        server_name=cli_args.server_name, server_port=cli_args.port, share=cli_args.share)
