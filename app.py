"""fomm-space web demo: animate a photo by a driving video, or live by the webcam
(Gradio Blocks), with the First Order Motion Model or its successor, the Thin-Plate
Spline Motion Model.

    python app.py [--share] [--server-name H] [--port P] [--model NAME]
                  [--config YAML --checkpoint PATH] [--device D] [--concurrency N]
                  [--keep-minutes M] [--max-upload-mb MB]

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
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import html
import json
import logging
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr

import fomm_space
from fomm_space import DEFAULTS, LIVE_DEFAULTS, MODELS, AnimationOptions, FommError, ModelConfig, load_model
from fomm_space.faces import DETECTORS
from fomm_space.frames import MAX_IMAGE_PIXELS, read_image
from fomm_space.compose.paste import UPSCALERS
from fomm_space.pipeline import animate_files
from fomm_space.registry import DEFAULT_MODEL, FAMILY_TITLES, get_spec

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
STAGES = {"faces": "Finding the face", "best frame": "Searching the best frame", "animating": "Animating"}
MAX_UPLOAD_MB = 200  # the largest upload the server takes by default (photos and clips)
log = logging.getLogger("fomm-space")
# The toggles wrap onto more lines on narrow screens instead of squeezing their labels.
CSS = """
#toggles .form { flex-direction: row; flex-wrap: wrap; }
#toggles .form > * { flex: 1 1 170px !important; min-width: 170px !important; }
"""
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

    def get(self, name: str, progress: Callable[[int, int | None], None] | None = None):
        """The model ``name``, loaded (and downloaded, reporting bytes to ``progress``) once."""
        with self._lock:
            if name not in self._models:
                if name in self.local:
                    config, checkpoint = self.local[name]
                    self._models[name] = load_model(config=config, checkpoint=checkpoint, device=self.args.device)
                else:
                    self._models[name] = load_model(name, device=self.args.device, progress=progress)
            return self._models[name]

    def identity(self, name: str) -> str:
        """What decides ``name``'s results: its local files (path, size, time) or its
        Hub repository, revision and file."""
        if name in self.local:
            files = [Path(f).resolve() for f in self.local[name]]
            return json.dumps([[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files])
        spec = get_spec(name)
        return json.dumps([spec.repo_id, spec.revision, spec.filename, spec.config])


class Stopped(Exception):
    """Raised inside a run that was asked to stop (Stop pressed, client gone)."""


class Run:
    """``work(report)`` in a worker thread, its reports relayed to the request.

    Gradio stops a generator (Stop button, page closed, client cancelled) by closing it
    at a ``yield``; a thread can't be stopped from outside, so once :meth:`stop` is
    called ``report`` raises :class:`Stopped` and the work ends at its next step (a
    face detection or a batch of frames), removing what it wrote.
    """

    POLL_S = 0.25

    def __init__(self, work: Callable[[Callable[[str, int, int | None], None]], object],
                 workers: concurrent.futures.ThreadPoolExecutor):
        self._stop = threading.Event()
        self._stopped_at = 0.0
        self._updates: queue.SimpleQueue = queue.SimpleQueue()
        self._outcome: dict[str, object] = {}
        workers.submit(self._main, work)  # pooled threads: memory stays flat over many runs

    def _report(self, stage: str, done: int, total: int | None) -> None:
        if self._stop.is_set():
            raise Stopped()
        self._updates.put((stage, done, total))

    def _main(self, work) -> None:
        try:
            self._outcome["value"] = work(self._report)
        except Stopped:
            log.info("run stopped %.2f s after it was asked to", time.monotonic() - self._stopped_at)
        except BaseException as e:  # handed to the request, which raises it
            self._outcome["error"] = e
        finally:
            self._updates.put(None)

    def updates(self) -> Iterator[tuple[str | None, int, int | None]]:
        """``(stage, done, total)`` as reported, ``(None, 0, None)`` every ``POLL_S``
        seconds without news; ends when the work does."""
        while True:
            try:
                item = self._updates.get(timeout=self.POLL_S)
            except queue.Empty:
                yield None, 0, None
                continue
            if item is None:
                return
            yield item

    def result(self):
        """The work's return value; raises what it raised."""
        if "error" in self._outcome:
            raise self._outcome["error"]  # type: ignore[misc]
        return self._outcome["value"]

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stopped_at = time.monotonic()
            self._stop.set()


def refuse(message: str) -> gr.Error:
    """A user's mistake: one log line, and the whole message shown as plain text."""
    log.warning("refused: %s", " ".join(message.split()))
    return gr.Error(html.escape(message, quote=False), print_exception=False)


def describe(stage: str, done: int, total: int | None, model: str) -> str:
    """The status line of a run's stage."""
    if stage == "loading":
        return f"Loading the {model} model"
    if stage == "downloading":
        size = f" of {total / 1e6:.0f}" if total else ""
        return f"Downloading the {model} model: {done / 1e6:.0f}{size} MB"
    of = f"/{total}" if total else ""
    return f"{STAGES.get(stage, stage.capitalize())}: {done}{of} frames"


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


def uploads_only(cls):
    """Class decorator for input components: take only files a user uploaded (they lie
    in Gradio's upload folder) or the app's own examples.

    Gradio itself refuses a server path outside its upload folder (``/etc/passwd``),
    but it takes the folders inside it, where this app's results are served from
    (``cls.refused``: another user's result is not an input), and it fetches links
    server-side; those are refused here, before any copy or download.
    """
    move, move_async = cls.move_resource_to_block_cache, cls.async_move_resource_to_block_cache

    def check(self, url_or_file_path) -> None:
        from gradio.utils import get_upload_folder
        from gradio_client.utils import is_http_url_like

        name = str(url_or_file_path)
        if is_http_url_like(name):
            raise refuse("Links are not taken; download the file and upload it.")
        path = Path(name).resolve()
        uploaded = path.is_relative_to(Path(get_upload_folder()).resolve()) or path.is_relative_to(EXAMPLES)
        if not uploaded or any(path.is_relative_to(root) for root in self.refused):
            raise refuse("Only files you upload can be animated; this one was not uploaded.")

    def move_checked(self, url_or_file_path):
        check(self, url_or_file_path)
        return move(self, url_or_file_path)

    async def move_checked_async(self, url_or_file_path):
        check(self, url_or_file_path)
        return await move_async(self, url_or_file_path)

    cls.refused = ()
    cls.move_resource_to_block_cache = move_checked
    cls.async_move_resource_to_block_cache = move_checked_async
    return cls


@uploads_only
class DrivingInput(gr.Video):
    """``gr.Video`` that takes uploads only (see :func:`uploads_only`)."""

    is_template = True  # rendered by gr.Video's frontend


@uploads_only
class PhotoInput(gr.Image):
    """``gr.Image`` that takes uploads only (see :func:`uploads_only`), hands over the
    file untouched (we read it ourselves, EXIF, 16-bit and size limits included) and
    turns a file that is no image into a clear message instead of a server error."""

    is_template = True  # rendered by gr.Image's frontend; construct with type="filepath", image_mode=None

    def preprocess(self, payload):
        from PIL import Image, UnidentifiedImageError

        try:
            return super().preprocess(payload)
        except Image.DecompressionBombError as e:
            raise refuse(f"The source photo has far more pixels than the limit of {MAX_IMAGE_PIXELS // 1_000_000} "
                           "megapixels. Scale it down and try again.") from e
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise refuse("The source is not an image that can be read; use a PNG or JPEG photo.") from e


class ModelChoice(gr.Dropdown):
    """``gr.Dropdown`` of model names that refuses an unknown name with our message
    (one log line, the names it takes), not a traceback."""

    is_template = True  # rendered by gr.Dropdown's frontend

    def preprocess(self, payload):
        names = [value for _, value in self.choices]
        if payload is not None and payload not in names:
            raise refuse(f"There is no model {payload!r} here; choose one of: {', '.join(map(str, names))}.")
        return super().preprocess(payload)


@contextlib.contextmanager
def examples_cache(key: str):
    """Gradio's example cache (``GRADIO_EXAMPLES_CACHE``, default
    ``.gradio/cached_examples``) in a sub-folder ``key`` while examples are made."""
    base = os.environ.get("GRADIO_EXAMPLES_CACHE")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(Path(base or ".gradio/cached_examples") / key)
    try:
        yield
    finally:
        if base is None:
            os.environ.pop("GRADIO_EXAMPLES_CACHE", None)
        else:
            os.environ["GRADIO_EXAMPLES_CACHE"] = base


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
    # The runs' threads; a stopped run may still be finishing when the next one starts.
    workers = concurrent.futures.ThreadPoolExecutor(2 * args.concurrency + 2, thread_name_prefix="fomm-run")

    def start_run(source, driving, model, options, report):
        """Load the model and animate into a fresh folder; ``report(stage, done, total)``
        may raise to stop. Runs in a worker thread; removes its folder if it fails."""
        out_dir = runs.new()
        try:
            report("loading", 0, None)
            m = models.get(model, progress=lambda done, total: report("downloading", done, total))
            result = animate_files(m, source, driving, out_dir / "animation.mp4", options=options,
                                   overlay=out_dir / "keypoints.mp4", progress=report)
        except BaseException:
            runs.discard(out_dir)
            raise
        return result

    @_on_gpu
    def animate(source: str | None, driving: str | None, relative: bool, adapt_scale: bool, crop_faces: bool,
                find_best_frame: bool, model: str = default_model, crop_scale: float = DEFAULTS.crop_scale,
                max_seconds: float = DEFAULTS.max_seconds, ai_mark: bool = DEFAULTS.ai_mark,
                paste_back: bool = DEFAULTS.paste_back, smoothing: float = DEFAULTS.smoothing,
                upscale: str = DEFAULTS.upscale, avd: bool = DEFAULTS.avd,
                face_detector: str = DEFAULTS.face_detector, progress=gr.Progress()):
        """Animate the face in `source` (a photo) by the motion of `driving` (a video).

        Yields the status while it works, and finally the animated video (with the
        driving sound), the keypoint-overlay video (source | driving | result) and a
        status line. Stopped (Stop button, client gone), the work ends at its next step.
        """
        if not source:
            raise refuse("Please give a source photo (upload, webcam or paste).")
        if not driving:
            raise refuse("Please give a driving video (upload or webcam).")
        if avd and families.get(model) != "tpsmm":
            raise refuse("The AVD mode exists only for TPSMM models; untick it or choose a TPSMM model.")
        options = AnimationOptions(relative=bool(relative), adapt_scale=bool(adapt_scale), crop=bool(crop_faces),
                                   find_best_frame=bool(find_best_frame), crop_scale=float(crop_scale),
                                   max_seconds=float(max_seconds), ai_mark=bool(ai_mark),
                                   paste_back=bool(paste_back), smoothing=float(smoothing), upscale=str(upscale),
                                   avd=bool(avd), face_detector=str(face_detector))
        run = Run(lambda report: start_run(source, driving, model, options, report), workers)
        try:
            for stage, done, total in run.updates():
                if stage is None:  # nothing new: give Gradio the chance to stop us
                    yield gr.skip(), gr.skip(), gr.skip()
                    continue
                desc = describe(stage, done, total, model)
                progress(min(1.0, done / total) if total else None, desc=desc)
                yield gr.skip(), gr.skip(), desc
            report = run.result()
        except FommError as e:
            raise refuse(e.render("page")) from e
        finally:
            run.stop()
        yield str(report.output), str(report.overlay), report.summary()

    with gr.Blocks(title="First Order Motion Model", delete_cache=(max(60, keep_s // 4), keep_s)) as demo:
        gr.Markdown("# First Order Motion Model\n"
                    "Animate a photo with the motion of a video: the First Order Motion Model (Siarohin et al., "
                    "NeurIPS 2019) or its successor, the Thin-Plate Spline Motion Model (Zhao & Zhang, CVPR 2022). "
                    "Give a photo and a driving video; the faces are found and cropped, the motion is "
                    "transferred, and you get the video with the driving sound and a view of the tracked "
                    f"keypoints.\n\n**{CONSENT}**")
        with gr.Tab("Animate a video", id="video"):
            with gr.Row():
                source = PhotoInput(type="filepath", image_mode=None, label="Source photo", height=360,
                                    sources=["upload", "webcam", "clipboard"], elem_id="source")
                driving = DrivingInput(label="Driving video", sources=["upload", "webcam"], elem_id="driving")
            source.refused = driving.refused = (runs.root.resolve(),)
            model = ModelChoice(choices, value=default_model, label="Model", elem_id="model")
            with gr.Row(elem_id="toggles"):  # wraps on narrow screens; each toggle keeps its label
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
                face_finder = gr.Radio(list(DETECTORS), value=DEFAULTS.face_detector, label="Face detector",
                                       elem_id="face-detector",
                                       info="sfd: small and turned faces anywhere (default); blazeface: close-up "
                                            "frontal faces in the centre, far faster; blazeface-back: the same "
                                            "further away")
                ai_mark = gr.Checkbox(value=DEFAULTS.ai_mark, label='Mark the video "AI-generated"')
            with gr.Row():
                button = gr.Button("Animate", variant="primary", elem_id="animate", scale=3)
                stop = gr.Button("Stop", variant="stop", elem_id="stop", scale=1, min_width=100)
            with gr.Row():
                result = gr.Video(label="Animation", height=360, elem_id="result")
                overlay = gr.Video(label="Keypoints: source | driving | result", height=360, elem_id="overlay")
            status = gr.Textbox(label="Status", interactive=False, elem_id="status")
            inputs = [source, driving, relative, adapt_scale, crop_faces, find_best_frame, model, crop_scale,
                      max_seconds, ai_mark, paste_back, smoothing, upscale, avd, face_finder]
            outputs = [result, overlay, status]
            animating = button.click(animate, inputs, outputs, api_name="animate")
            stop.click(None, None, None, cancels=[animating], api_visibility="private")
            # Upscaling only applies to paste-back.
            paste_back.change(lambda on: gr.Radio(interactive=on), paste_back, upscale, api_visibility="private")
            # The AVD mode only exists for TPSMM models.
            model.change(lambda name: gr.Checkbox(visible=True) if families.get(name) == "tpsmm"
                         else gr.Checkbox(visible=False, value=False), model, avd, api_visibility="private")
            if (EXAMPLES / "face.png").exists():
                rows = [[str(EXAMPLES / "face.png"), str(EXAMPLES / clip), True, True, False, False, default_model]
                        for clip in ("nod.mp4", "talk.mp4")]
                # Cached results belong to the model (files or Hub revision) and options that made them.
                key = hashlib.sha256(json.dumps([models.identity(default_model), rows, fomm_space.__version__])
                                     .encode()).hexdigest()[:16]
                with examples_cache(key):
                    gr.Examples(rows, inputs[:7], outputs, fn=animate, cache_examples=True, cache_mode="lazy",
                                example_labels=["Drawn face, nodding", "Drawn face, talking"],
                                label="Examples (drawn by this project, CC0; pre-cropped, so face cropping is off)")
        with gr.Tab("Live", id="live"):
            live_ui(models, choices, default_model, (runs.root.resolve(),))
    demo.fomm_runs = runs  # for tests and operators: where results live, and their sweep
    return demo


LIVE_SECONDS = 300   # one live stream's time on the server; the page can start another
LIVE_SESSIONS = 2    # live streams served at once; more wait in the queue


def live_status(live) -> str:
    """The Live tab's status line: where the session is and how fast it goes."""
    return (f"frame {live.frames} · reference frame {live.reference_frame} · "
            f"{live.ms_per_frame:.0f} ms a frame on the server · {live.frames_per_second:.1f} frames/s")


def live_ui(models: Models, choices: list, default_model: str, refused: tuple) -> None:
    """The Live tab: the photo moved by the webcam, frame by frame, one session per page."""
    if os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "true"):
        gr.Markdown("**Live needs dedicated hardware.** On ZeroGPU a GPU is lent for one call at a time, "
                    "so a stream of frames can't hold one. Use *Animate a video*, or run this app on a GPU "
                    "Space or your own machine (`python app.py`).")
        return
    gr.Markdown("Choose a photo and a model and press **Start**; then turn the camera on (the button under "
                "it). The first frame is the reference: look as the photo does, or press **Match my pose** "
                "to pick the closest frame of the next second. **Reset reference** takes the next frame. "
                "When the server is behind, frames are dropped, never queued.")
    with gr.Row():
        photo = PhotoInput(type="filepath", image_mode=None, label="Photo", height=300,
                           sources=["upload", "clipboard"], elem_id="live-photo")
        camera = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera", height=300,
                          elem_id="live-camera")
        shown = gr.Image(label="Animated", type="numpy", interactive=False, height=300, format="jpeg",
                         elem_id="live-out")
    photo.refused = refused
    model = ModelChoice(choices, value=default_model, label="Model", elem_id="live-model")
    with gr.Row(elem_id="live-toggles"):
        relative = gr.Checkbox(value=LIVE_DEFAULTS.relative, label="Relative motion")
        adapt_scale = gr.Checkbox(value=LIVE_DEFAULTS.adapt_scale, label="Adapt movement scale")
        crop_faces = gr.Checkbox(value=LIVE_DEFAULTS.crop, label="Crop faces", elem_id="live-crop")
        paste_back = gr.Checkbox(value=LIVE_DEFAULTS.paste_back, label="Paste back into the photo")
        smoothing = gr.Slider(0.0, 1.0, value=LIVE_DEFAULTS.smoothing, step=0.05, label="Keypoint smoothing")
    with gr.Row():
        start = gr.Button("Start", variant="primary", elem_id="live-start")
        reset = gr.Button("Reset reference", elem_id="live-reset")
        match = gr.Button("Match my pose", elem_id="live-match")
    status = gr.Textbox(label="Live", interactive=False, elem_id="live-status")
    session = gr.State(None, time_to_live=2 * LIVE_SECONDS, delete_callback=lambda live: live and live.close())

    def begin(photo_path, name, relative, adapt_scale, crop_faces, paste_back, smoothing, old):
        if old is not None:
            old.close()
        if not photo_path:
            raise refuse("Please give a photo first.")
        options = dataclasses.replace(LIVE_DEFAULTS, relative=bool(relative), adapt_scale=bool(adapt_scale),
                                      crop=bool(crop_faces), paste_back=bool(paste_back),
                                      smoothing=float(smoothing))
        try:
            live = models.get(name).live(read_image(photo_path), options)
        except FommError as e:
            raise refuse(e.render("page")) from e
        return live, f"Ready ({name}): turn the camera on."

    def step(frame, live):
        if frame is None:
            return gr.skip(), gr.skip()
        if live is None:
            return gr.skip(), "Press Start first (a photo, then Start)."
        try:
            return live.push(frame), live_status(live)
        except FommError as e:
            raise refuse(e.render("page")) from e

    def restart(live):
        if live is None:
            return "Press Start first (a photo, then Start)."
        live.reset()
        return "Reference reset: the next frame is the new reference."

    def match_pose(live):
        if live is None:
            return "Press Start first (a photo, then Start)."
        live.match_pose()
        return "Matching your pose over the next second..."

    start.click(begin, [photo, model, relative, adapt_scale, crop_faces, paste_back, smoothing, session],
                [session, status], api_visibility="private")
    camera.stream(step, [camera, session], [shown, status], stream_every=0.04, time_limit=LIVE_SECONDS,
                  concurrency_limit=LIVE_SESSIONS, api_visibility="private")
    reset.click(restart, session, status, api_visibility="private")
    match.click(match_pose, session, status, api_visibility="private")


def prefetch_face_weights() -> None:
    """Download face-alignment's weights and run its networks once now, and try NVENC
    (on a Space, at start-up, in the background), not behind the first user's click."""
    from fomm_space.device import select_dtype, select_device
    from fomm_space.faces import face_detector, face_precision

    try:  # the one a CPU request uses: at the precision beside the model's
        cpu = select_device("cpu")
        face_detector("cpu", DEFAULTS.face_detector, face_precision(select_dtype("auto", cpu))).warm_up()
        log.info("face-alignment's weights are ready")
    except FommError as e:
        log.warning("face-alignment's weights could not be fetched at start-up: %s", e.render("cli"))
    from fomm_space.video import nvenc_available

    # Whether NVIDIA's encoder can be opened here, tried once now (a GPU request's "auto")
    log.info("video encoder on a GPU: %s", "NVENC" if nvenc_available() else "x264 (no NVENC here)")


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
    parser.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB,
                        help=f"largest photo or video a user may upload, in MB (default {MAX_UPLOAD_MB})")
    args = parser.parse_args(argv)
    if len(args.config) != len(args.checkpoint):
        parser.error("--config and --checkpoint go together, one of each per model")
    if args.concurrency < 1 or args.keep_minutes <= 0 or args.max_upload_mb <= 0:
        parser.error("--concurrency must be at least 1, --keep-minutes and --max-upload-mb positive")
    return args


def launch(demo: gr.Blocks, args: argparse.Namespace, **kwargs):
    """Queue (bounded concurrency) and serve."""
    return demo.queue(default_concurrency_limit=args.concurrency, max_size=32).launch(
        server_name=args.server_name, server_port=args.port, share=args.share,
        max_file_size=int(args.max_upload_mb * 1_000_000), css=CSS, **kwargs)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per HTTP request
    cli_args = parse_args()
    if os.environ.get("SPACE_ID"):
        threading.Thread(target=prefetch_face_weights, name="face-weights", daemon=True).start()
    launch(build_demo(cli_args), cli_args)
