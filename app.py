"""fomm-space web demo: animate a photo by a driving video, or live by the webcam
(Gradio Blocks), with the First Order Motion Model or its successor, the Thin-Plate
Spline Motion Model.

    python app.py [--share] [--server-name H] [--port P] [--model NAME]
                  [--config YAML --checkpoint PATH] [--device D] [--concurrency N]
                  [--keep-minutes M] [--max-upload-mb MB] [--temp-dir DIR] [--per-visitor N]
                  [--max-frames N] [--upload-mb-per-hour MB] [--files-per-upload N]
                  [--inline-mb MB] [--live-idle-seconds S] [--proxy-hops N]

On a Hugging Face Space (ZeroGPU included) the same file is the app: ``spaces`` is
imported before torch, and the GPU work runs inside ``spaces.GPU``. Every request
passes the guard first (``fomm_space.guard``: the visitor's own uploads only, checked
values, fair shares); ``python app.py --help`` lists the limits.
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
import collections
import concurrent.futures
import contextlib
import hashlib
import html
import inspect
import json
import logging
import queue
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr

import fomm_space
from fomm_space import DEFAULTS, LIVE_DEFAULTS, MODELS, FommError, load_model, read_config
from fomm_space.faces import DETECTORS
from fomm_space.options import options_from
from fomm_space.guard import Endpoint, Gate, Guard, Limits, clip, paths_in
from fomm_space.frames import MAX_IMAGE_PIXELS, read_image
from fomm_space.compose.paste import UPSCALERS
from fomm_space.pipeline import animate_files
from fomm_space.registry import DEFAULT_MODEL, FAMILY_TITLES, get_spec

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
STAGES = {"faces": "Finding the face", "best frame": "Searching the best frame", "animating": "Animating"}
MAX_UPLOAD_MB = 200  # the largest upload the server takes by default (photos and clips)
MAX_FRAMES = 1800    # the most driving frames a request animates by default (60 s at 30 fps)
QUEUE_SIZE = 32      # requests waiting, from all visitors
LIVE_FRAME_PIXELS = 4_000_000  # a camera frame sent to the Live tab
log = logging.getLogger("fomm-space")
# The toggles wrap onto more lines on narrow screens instead of squeezing their labels.
# Gradio's time badge on the streamed picture would cover its "AI-generated" mark (the
# status line below says the time a frame). A long model name ends before the dropdown's
# arrow, not under it.
CSS = """
#toggles .form, #live-toggles .form { flex-direction: row; flex-wrap: wrap; }
#toggles .form > *, #live-toggles .form > * { flex: 1 1 170px !important; min-width: 170px !important; }
#live-out .progress-text { display: none !important; }
#model input, #live-model input { padding-right: 28px !important; text-overflow: ellipsis; }
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
        self.finished = threading.Event()  # the work has ended (its files removed if it failed)
        self.ended = threading.Event()     # the request showing it has ended (set by the request)
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
            self.finished.set()
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

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stopped_at = time.monotonic()
            self._stop.set()


SERVER_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s\\/'\"]+){2,}[\\/]?")
MAX_MESSAGE = 500  # characters a visitor is shown at most


def for_visitor(message: str) -> str:
    """``message`` as a visitor may see it: file names without their server folders,
    at most :data:`MAX_MESSAGE` characters, on one line."""
    text = SERVER_PATH.sub(lambda m: m.group(0).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1],
                           " ".join(message.split()))
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def from_api(request: gr.Request | None) -> bool:
    """Whether the request came from gradio_client (the web API), not the page."""
    return request is not None and request.headers.get("x-gradio-user") == "api"


class Failures:
    """The message of each page session's last failed run, until the page shows it in
    its status line (a toast goes away; the status stays)."""

    def __init__(self, size: int = 1000):
        self._messages: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def keep(self, session: str | None, message: str) -> None:
        if session:
            with self._lock:
                self._messages[session] = message
                while len(self._messages) > self._size:
                    self._messages.popitem(last=False)

    def take(self, session: str | None) -> str | None:
        with self._lock:
            return self._messages.pop(session, None) if session else None


FAILURES = Failures()


def refuse(page: str, api: str | None = None, request: gr.Request | None = None) -> gr.Error:
    """A user's mistake: one log line, and the whole message as plain text: worded for
    the page (escaped: a toast renders HTML), or for the API (``api``, when the request
    came from gradio_client). The page's session keeps it for its status line."""
    to_api = from_api(request)
    message = for_visitor(api if to_api and api else page)
    log.warning("refused: %s", message)
    if request is not None and not to_api:
        FAILURES.keep(request.session_hash, message)
    return gr.Error(message if to_api else html.escape(message, quote=False), print_exception=False)


def refuse_error(error: FommError, request: gr.Request | None = None) -> gr.Error:
    """:func:`refuse` for one of our errors, in the page's words or the API's."""
    return refuse(error.render("page"), error.render("api"), request)


def describe(stage: str, done: int, total: int | None, model: str) -> str:
    """The status line of a run's stage."""
    if stage == "loading":
        return f"Loading the {model} model"
    if stage == "downloading":
        size = f" of {total / 1e6:.0f}" if total else ""
        return f"Downloading the {model} model: {done / 1e6:.0f}{size} MB"
    if stage == "faces" and done == 0:
        return "Finding the face in the photo"
    of = f"/{total}" if total else ""
    return f"{STAGES.get(stage, stage.capitalize())}: {done}{of} frame{'' if (total or done) == 1 else 's'}"


class Outputs:
    """Per-request output folders under one root, named at random.

    The videos are written inside Gradio's cache, so Gradio serves them without a copy;
    the whole cache (uploads included) is swept by the :class:`~fomm_space.guard.Gate`.
    A failed request's folder is deleted at once.
    """

    def __init__(self, root: Path):
        self.root = root

    def new(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="run-", dir=self.root))

    @staticmethod
    def discard(folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)


# Input components whose preprocess is ours: set on the instance, not in a subclass (Gradio
# writes a .pyi file beside the module of every component subclass).

def driving_input(**kwargs) -> gr.Video:
    """``gr.Video`` that hands over the uploaded file untouched: Gradio's own preprocess
    would run ffmpeg on it to convert it; we read it ourselves (``fomm_space.video``).
    The guard has already checked that the visitor uploaded it."""
    video = gr.Video(**kwargs)
    video.preprocess = lambda payload: None if payload is None else payload.path
    return video


def photo_input(**kwargs) -> gr.Image:
    """``gr.Image`` that hands over the file untouched (we read it ourselves, EXIF, 16-bit
    and size limits included: Gradio only opens its header) and turns a file that is no
    image into a clear message instead of a server error. The guard has already checked
    the file (the visitor's upload) or the inline image (its bytes and pixels)."""
    photo = gr.Image(type="filepath", image_mode=None, **kwargs)
    gradios = photo.preprocess

    def preprocess(payload):
        from PIL import Image

        try:
            return gradios(payload)
        except Image.DecompressionBombError as e:
            raise refuse(f"The source photo has far more pixels than the limit of {MAX_IMAGE_PIXELS // 1_000_000} "
                         "megapixels. Scale it down and try again.") from e
        except Exception as e:  # noqa: BLE001 - whatever Pillow raises on a file that is no image
            name = for_visitor(getattr(payload, "orig_name", None) or "The source")
            raise refuse(f"{name} is not an image that can be read; use a PNG or JPEG photo.") from e

    photo.preprocess = preprocess
    return photo


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
    # Gradio's uploads and cache in a folder of this app's own, which the guard sweeps.
    temp = Path(args.temp_dir).resolve()
    temp.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(temp)
    runs = Outputs(temp / "fomm-space")
    short = {"fomm": "FOMM", "tpsmm": "TPSMM"}
    local: dict[str, tuple[str, str]] = {}
    public: frozenset[Path] = frozenset()
    if args.checkpoint:
        families, choices = {}, []
        for config, checkpoint in zip(args.config, args.checkpoint):
            try:
                family = read_config(config).family
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
                face_detector: str = DEFAULTS.face_detector, progress=gr.Progress(),
                request: gr.Request = None):
        """Animate the face in `source` (a photo) by the motion of `driving` (a video).

        Yields the status while it works, and finally the animated video (with the
        driving sound), the keypoint-overlay video (source | driving | result) and a
        status line. Stopped (Stop button, client gone), the work ends at its next step.
        """
        if not source:
            raise refuse("Please give a source photo (upload, webcam or paste).",
                         "source is missing: give a photo (source=handle_file(...)).", request)
        if not driving:
            raise refuse("Please give a driving video (upload or webcam).",
                         "driving is missing: give a video (driving=handle_file(...)).", request)
        if avd and families.get(model) != "tpsmm":
            raise refuse("The AVD mode exists only for TPSMM models; untick it or choose a TPSMM model.",
                         "avd=True works only with a TPSMM model; set avd=False or choose one (model=...).",
                         request)
        options = options_from(dict(relative=relative, adapt_scale=adapt_scale, crop_faces=crop_faces,
                                    find_best_frame=find_best_frame, crop_scale=crop_scale, max_seconds=max_seconds,
                                    max_frames=args.max_frames, ai_mark=ai_mark, paste_back=paste_back,
                                    smoothing=smoothing, upscale=upscale, avd=avd, face_detector=face_detector))
        run = Run(lambda report: start_run(source, driving, model, options, report), workers)
        session = request.session_hash if request is not None else None
        running[session] = run
        try:
            for stage, done, total in run.updates():
                if stage is None:  # nothing new: give Gradio the chance to stop us
                    yield gr.skip(), gr.skip(), gr.skip()
                    continue
                desc = describe(stage, done, total, model)
                progress(min(1.0, done / total) if total else None, desc=desc)
                yield gr.skip(), gr.skip(), desc
            if run.stopped:
                return  # Stop's own event says so, once this generator has ended
            report = run.result()
        except FommError as e:
            raise refuse_error(e, request) from e
        finally:
            if running.get(session) is run and not run.stopped:  # ended by itself, or the page went
                running.pop(session, None)
            run.stop()
            run.ended.set()
        yield str(report.output), str(report.overlay), report.summary()

    running: dict[str | None, Run] = {}  # page session -> its run (Stop reports on it)

    def failed(request: gr.Request):
        """After a failed run: the outputs cleared, the message kept in the status."""
        message = FAILURES.take(request.session_hash)
        return None, None, f"Failed: {message}" if message else "Failed."

    def stopped(request: gr.Request):
        """After Stop: once the run has ended and its files are gone, says so (after the
        run's last progress line, which would otherwise cover it)."""
        run = running.pop(request.session_hash, None)
        if run is None:
            return gr.skip(), gr.skip(), gr.skip()
        run.stop()
        run.finished.wait(10)
        run.ended.wait(10)
        return None, None, "Stopped; its files were deleted."

    with gr.Blocks(title="First Order Motion Model") as demo:
        gr.Markdown("# First Order Motion Model\n"
                    "Animate a photo with the motion of a video: the First Order Motion Model (Siarohin et al., "
                    "NeurIPS 2019) or its successor, the Thin-Plate Spline Motion Model (Zhao & Zhang, CVPR 2022). "
                    "Give a photo and a driving video; the faces are found and cropped, the motion is "
                    "transferred, and you get the video with the driving sound and a view of the tracked "
                    f"keypoints.\n\n**{CONSENT}**")
        with gr.Tab("Animate a video", id="video"):
            with gr.Row():
                source = photo_input(label="Source photo", height=360, sources=["upload", "webcam", "clipboard"],
                                     elem_id="source")
                driving = driving_input(label="Driving video", sources=["upload", "webcam"], elem_id="driving")
            model = gr.Dropdown(choices, value=default_model, label="Model", elem_id="model")
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
                                       elem_id="crop-scale",
                                       info="crop side / face box side; larger keeps more hair and shoulders")
                max_seconds = gr.Slider(1, 300, value=DEFAULTS.max_seconds, step=1, label="Max seconds",
                                        info=f"longer driving videos are cut here, and after {args.max_frames} "
                                             "frames whatever their frame rate")
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
            animating.failure(failed, None, outputs, api_visibility="private")
            stop.click(stopped, None, outputs, cancels=[animating], api_visibility="private")
            # Cropping's settings only apply with cropping on.
            crop_faces.change(lambda on: (gr.Slider(interactive=on), gr.Radio(interactive=on)), crop_faces,
                              [crop_scale, face_finder], api_visibility="private")
            # Upscaling only applies to paste-back.
            paste_back.change(lambda on: gr.Radio(interactive=on), paste_back, upscale, api_visibility="private")
            # The AVD mode only exists for TPSMM models.
            model.change(lambda name: gr.Checkbox(visible=True) if families.get(name) == "tpsmm"
                         else gr.Checkbox(visible=False, value=False), model, avd, api_visibility="private")
            if (EXAMPLES / "face.png").exists():
                rows = [[str(EXAMPLES / "face.png"), str(EXAMPLES / name), True, True, False, False, default_model]
                        for name in ("nod.mp4", "talk.mp4")]
                # Cached results belong to the model (files or Hub revision) and options that made them.
                key = hashlib.sha256(json.dumps([models.identity(default_model), rows, fomm_space.__version__])
                                     .encode()).hexdigest()[:16]
                with examples_cache(key):
                    examples = gr.Examples(rows, inputs[:7], outputs, fn=animate, cache_examples=True,
                                           cache_mode="lazy", example_labels=["Drawn face, nodding", "Drawn face, talking"],
                                           label="Examples (drawn by this project, CC0; pre-cropped, so face "
                                                 "cropping is off)")
                public = paths_in(examples.dataset.samples)
        with gr.Tab("Live", id="live"):
            live_ui(models, choices, default_model)
    demo.fomm_runs = runs  # for tests and operators: where results live
    demo.fomm_public = public  # the examples' files, which any visitor may send
    return demo


LIVE_SECONDS = 300   # one live stream's time on the server; the page can start another
LIVE_SESSIONS = 2    # live streams served at once; more wait in the queue


def live_status(live) -> str:
    """The Live tab's status line: where the session is and how fast it goes."""
    return (f"frame {live.frames} · reference frame {live.reference_frame} · "
            f"{live.ms_per_frame:.0f} ms a frame on the server · {live.frames_per_second:.1f} frames/s")


def live_ui(models: Models, choices: list, default_model: str) -> None:
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
        photo = photo_input(label="Photo", height=300, sources=["upload", "clipboard"], elem_id="live-photo")
        camera = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera", height=300,
                          elem_id="live-camera")
        shown = gr.Image(label="Animated", type="numpy", interactive=False, height=300, format="jpeg",
                         elem_id="live-out")
    model = gr.Dropdown(choices, value=default_model, label="Model", elem_id="live-model")
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

    def begin(photo_path, name, relative, adapt_scale, crop_faces, paste_back, smoothing, old,
              request: gr.Request = None):
        if old is not None:
            old.close()
        if not photo_path:
            raise refuse("Please give a photo first.", request=request)
        options = options_from(dict(relative=relative, adapt_scale=adapt_scale, crop_faces=crop_faces,
                                    paste_back=paste_back, smoothing=smoothing), LIVE_DEFAULTS)
        try:
            live = fomm_space.LiveSession(models.get(name), read_image(photo_path), options)
        except FommError as e:
            raise refuse_error(e, request) from e
        return live, f"Ready ({name}): turn the camera on."

    def step(frame, live, request: gr.Request = None):
        if frame is None:
            return gr.skip(), gr.skip()
        if live is None:
            return gr.skip(), "Press Start first (a photo, then Start)."
        try:
            return live.push(frame), live_status(live)
        except FommError as e:
            raise refuse_error(e, request) from e

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
    parser.add_argument("--temp-dir", default=os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir())
                                                                                      / "fomm-space"),
                        help="this app's own folder for uploads and results, swept (default: the system's "
                             "temporary folder/fomm-space)")
    limits = Limits()
    parser.add_argument("--per-visitor", type=int, default=limits.jobs,
                        help=f"animations one visitor may have queued or running at once (default {limits.jobs})")
    parser.add_argument("--max-frames", type=int, default=MAX_FRAMES,
                        help=f"most driving frames animated a request, whatever the frame rate (default {MAX_FRAMES})")
    parser.add_argument("--upload-mb-per-hour", type=float, default=limits.upload_mb_per_hour,
                        help=f"MB one visitor may upload in an hour (default {limits.upload_mb_per_hour:g})")
    parser.add_argument("--files-per-upload", type=int, default=limits.files_per_upload,
                        help=f"files in one upload request (default {limits.files_per_upload})")
    parser.add_argument("--inline-mb", type=float, default=limits.inline_mb,
                        help=f"largest image sent inside a request rather than uploaded (default {limits.inline_mb:g})")
    parser.add_argument("--live-idle-seconds", type=float, default=limits.stream_idle_s,
                        help=f"a live stream that sends no frame this long ends (default {limits.stream_idle_s:g})")
    parser.add_argument("--proxy-hops", type=int, default=None,
                        help="trusted proxies in front of the app, whose X-Forwarded-For names the visitor "
                             "(default 1 on a Hugging Face Space or with --share, else 0)")
    args = parser.parse_args(argv)
    if len(args.config) != len(args.checkpoint):
        parser.error("--config and --checkpoint go together, one of each per model")
    if args.proxy_hops is None:
        args.proxy_hops = 1 if os.environ.get("SPACE_ID") or args.share else 0
    counts = ("concurrency", "per_visitor", "max_frames", "files_per_upload")
    amounts = ("keep_minutes", "max_upload_mb", "upload_mb_per_hour", "inline_mb", "live_idle_seconds")
    if any(getattr(args, n) < 1 for n in counts) or not all(0 < getattr(args, n) < float("inf") for n in amounts) \
            or args.proxy_hops < 0:
        parser.error("--" + ", --".join(n.replace("_", "-") for n in counts) + " must be at least 1; --"
                     + ", --".join(n.replace("_", "-") for n in amounts) + " positive; --proxy-hops 0 or more")
    return args


def limits_of(args: argparse.Namespace) -> Limits:
    """The guard's limits from the command line."""
    return Limits(jobs=args.per_visitor, files_per_upload=args.files_per_upload,
                  upload_mb_per_hour=args.upload_mb_per_hour, inline_mb=args.inline_mb,
                  keep_s=args.keep_minutes * 60, stream_idle_s=args.live_idle_seconds, proxy_hops=args.proxy_hops)


def launch(demo: gr.Blocks, args: argparse.Namespace, **kwargs):
    """Queue (bounded concurrency) and serve behind the guard (``demo.fomm_gate``)."""
    from starlette.middleware import Middleware

    demo.queue(default_concurrency_limit=args.concurrency, max_size=QUEUE_SIZE, api_open=False)
    limits = limits_of(args)
    # Gradio's queue holds an event from joining until it ends; it offers no public way
    # to ask, so its table is read here (tested by tests/test_hostile_clients.py).
    gate = Gate(Path(os.environ["GRADIO_TEMP_DIR"]), limits, alive=lambda event: event in demo._queue.event_ids_to_events)
    gate.make_public(demo.fomm_public)
    demo.fomm_gate = gate
    endpoints, names = guarded_endpoints(demo)
    demo.fomm_sweeping = gate.start_sweeping(max(10.0, min(300.0, limits.keep_s / 4)))  # set() stops it
    guard = Middleware(Guard, gate=gate, endpoints=endpoints, names=names)
    return demo.launch(server_name=args.server_name, server_port=args.port, share=args.share,
                       max_file_size=int(args.max_upload_mb * 1_000_000), css=CSS,
                       app_kwargs={"middleware": [guard]}, **kwargs)


def input_rule(component) -> "Callable":
    """The guard's rule for one input component's value: what the page could send."""
    label = component.label or type(component).__name__
    if isinstance(component, gr.Video):
        return lambda value, gate: gate.file(value, image=False)
    if isinstance(component, gr.Image):
        # Gradio decodes a camera frame itself; a photo is read by the app, within its limits.
        pixels, decoded = (LIVE_FRAME_PIXELS, True) if component.streaming else (MAX_IMAGE_PIXELS, False)
        return lambda value, gate: gate.file(value, image=True, pixels=pixels, decoded=decoded)
    if isinstance(component, gr.Checkbox):
        return lambda value, gate: None if isinstance(value, bool) else f"{label} must be true or false."
    if isinstance(component, gr.Slider):
        low, high = component.minimum, component.maximum

        def number(value, gate):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
            return None if ok else f"{label} must be a number from {low:g} to {high:g}, not {clip(value)}."
        return number
    if isinstance(component, gr.Dataset):
        count = len(component.samples or [])
        return lambda value, gate: None if isinstance(value, int) and not isinstance(value, bool) and \
            0 <= value < count else f"There is no example {clip(value)}."
    if isinstance(component, (gr.Radio, gr.Dropdown)):
        names = [value for _, value in component.choices]
        return lambda value, gate: None if value in names and value is not None else (
            f"{label} must be one of: {', '.join(map(str, names))}; not {clip(value)}.")
    return lambda value, gate: any_files(value, gate)


def any_files(value, gate) -> str | None:
    """Every file payload inside ``value`` through the gate (components without a rule
    of their own: states, example tables)."""
    if isinstance(value, dict):
        if "path" in value or "url" in value:
            return gate.file(value, image=False)
        return next((why for v in value.values() if (why := any_files(v, gate))), None)
    if isinstance(value, list):
        return next((why for v in value if (why := any_files(v, gate))), None)
    return None


def guarded_endpoints(demo: gr.Blocks) -> tuple[dict[int, Endpoint], dict[str, int]]:
    """The guard's view of every event of ``demo``: its inputs' rules, and its kind
    (animations are jobs, the camera's stream is a stream)."""
    endpoints, names = {}, {}
    for index, fn in demo.fns.items():
        kind = ("stream" if any(trigger == "stream" for _, trigger in fn.targets)
                else "job" if getattr(fn.fn, "__name__", "") in ("animate", "load_example_output") else "light")
        try:
            params = tuple(inspect.signature(fn.fn).parameters)[:len(fn.inputs)] if fn.fn else ()
        except (TypeError, ValueError):
            params = ()
        endpoints[index] = Endpoint(fn.api_name or f"fn_index {index}", tuple(map(input_rule, fn.inputs)), kind,
                                    params)
        if fn.api_name:
            names[fn.api_name] = index
    return endpoints, names


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per HTTP request
    cli_args = parse_args()
    if os.environ.get("SPACE_ID"):
        threading.Thread(target=prefetch_face_weights, name="face-weights", daemon=True).start()
    launch(build_demo(cli_args), cli_args)
