"""The web demo's /animate endpoint, called through gradio_client on loopback."""

import concurrent.futures
import shutil
import subprocess

import numpy as np
import pytest

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from fomm_space.video import ffmpeg_exe, probe  # noqa: E402

MODEL = "checkpoint.pth.tar"


def client_for(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def call(url, source, driving, **kw):
    from gradio_client import handle_file

    params = dict(relative=True, adapt_scale=True, crop_faces=False, find_best_frame=False, model=MODEL)
    params.update(kw)
    return client_for(url).predict(source=handle_file(str(source)), driving=handle_file(str(driving)),
                                   api_name="/animate", **params)


def local_copy(item, tmp_path, name):
    path = item["video"] if isinstance(item, dict) else item
    return shutil.copy(path, tmp_path / name)


def codec(path):
    text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return "Video: h264" in text and "yuv420p" in text


def test_api_parameters_are_named_for_users(app_url):
    api = client_for(app_url).view_api(print_info=False, return_format="dict")
    names = [p["parameter_name"] for p in api["named_endpoints"]["/animate"]["parameters"]]
    assert names[:7] == ["source", "driving", "relative", "adapt_scale", "crop_faces", "find_best_frame", "model"]


def test_animate_returns_two_h264_videos(app_url, media, tmp_path):
    photo, clip = media
    video, overlay, status = call(app_url, photo, clip)
    assert "12 frames" in status
    out, kp = local_copy(video, tmp_path, "out.mp4"), local_copy(overlay, tmp_path, "kp.mp4")
    assert codec(out) and codec(kp)
    assert probe(out).size == (128, 96)  # pasted back into the 128x96 photo (the default)
    assert probe(kp).size == (192, 64)


def test_faces_are_cropped_by_default(app_url, media, tmp_path):
    photo, clip = media
    video, _, status = call(app_url, photo, clip, crop_faces=True, find_best_frame=False)
    assert "12 frames" in status


@pytest.mark.parametrize("case, message", [
    ("photo-as-video", "still image, not a video"),
    ("video-as-photo", "not an image"),
    ("text-as-video", "can't be read as a video"),
    ("unknown-model", "model: Model must be one of: checkpoint.pth.tar; not 'nope'"),
])
def test_bad_inputs_are_app_errors_with_our_message(app_url, media, tmp_path, case, message):
    from gradio_client.exceptions import AppError, ValidationError

    photo, clip = media
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    source, driving, kw = {"photo-as-video": (photo, photo, {}), "video-as-photo": (clip, clip, {}),
                           "text-as-video": (photo, text, {}), "unknown-model": (photo, clip, {"model": "nope"})}[case]
    # A value the page could not send is refused before the queue, beside its parameter.
    with pytest.raises(ValidationError if case == "unknown-model" else AppError, match=message):
        call(app_url, source, driving, **kw)
    video, _, _ = call(app_url, photo, clip)  # the app is still up
    assert video


def test_two_concurrent_requests_both_finish(app_url, media):
    photo, clip = media
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: call(app_url, photo, clip), range(2)))
    assert all("12 frames" in status for _, _, status in results)


def test_failed_requests_leave_no_files(app_demo, app_url, media):
    from gradio_client.exceptions import AppError

    photo, clip = media
    runs = app_demo.fomm_runs
    before = set(runs.root.glob("run-*"))
    with pytest.raises(AppError):
        call(app_url, photo, photo)
    assert set(runs.root.glob("run-*")) == before  # the failed run's folder is gone
    # Old results are swept by the guard's sweep (tests/test_hostile_clients.py).



def test_webcam_webm_and_gif_drivers_work(app_url, media, tmp_path):
    photo, _ = media
    for name, codec_args in (("cam.webm", ["-c:v", "libvpx", "-c:a", "libopus"]), ("loop.gif", [])):
        clip = tmp_path / name
        sound = ["-f", "lavfi", "-i", "sine=duration=1", "-shortest"] if name.endswith("webm") else []
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                        "testsrc=size=96x64:rate=10:duration=1", *sound, *codec_args, str(clip)], check=True)
        video, _, status = call(app_url, photo, clip)
        assert "10 frames at 10 fps" in status, status
        assert codec(local_copy(video, tmp_path, "out.mp4"))


def test_on_a_space_spaces_comes_first_and_the_app_serves(tiny_files, face_weights, media, tmp_path):
    """As on a Hugging Face Space (SPACE_ID set, CPU hardware): `spaces` is imported
    before torch, GPU work goes through spaces.GPU (a no-op off ZeroGPU), face-alignment's
    weights are fetched at start-up (here: found in TORCH_HOME), and it serves."""
    import ast
    from pathlib import Path

    pytest.importorskip("spaces")
    root = Path(__file__).resolve().parent.parent
    tree = ast.parse((root / "app.py").read_text())
    order = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Import) and n.names[0].name == "spaces"]
    first_heavy = min(n.lineno for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                      and (getattr(n, "module", None) or n.names[0].name).split(".")[0]
                      in ("gradio", "fomm_space", "torch"))
    assert order and order[0] < first_heavy
    from benchmarks.serve import served_app

    args = ["--config", tiny_files[0], "--checkpoint", tiny_files[1], "--device", "cpu"]
    import threading
    import time

    with served_app(args, tmp_path, {"SPACE_ID": "someone/fomm-space"}, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT) as (url, server):
        lines: list[str] = []
        threading.Thread(target=lambda: [lines.append(line) for line in server.stdout], daemon=True).start()
        photo, clip = media
        _, _, status = call(url, photo, clip)
        assert "12 frames" in status
        deadline = time.time() + 60  # the weights are fetched and the networks run once in the background
        while not any("face-alignment's weights are ready" in line for line in lines):
            assert time.time() < deadline, "".join(lines)
            time.sleep(0.5)


def test_the_space_front_matter_preloads_the_default_model():
    """README's `preload_from_hub` names the default model's repository and file, so a
    Space downloads it at build time, not behind the first click."""
    from pathlib import Path

    import yaml

    from fomm_space.registry import DEFAULT_MODEL, get_spec

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    front = yaml.safe_load(text.split("---")[1])
    spec = get_spec(DEFAULT_MODEL)
    assert f"{spec.repo_id} {spec.filename}" in front["preload_from_hub"]
    assert front["license"] == "mit"


def test_paste_back_off_and_smoothing_through_the_api(app_url, media, tmp_path):
    photo, clip = media
    video, _, status = call(app_url, photo, clip, paste_back=False, smoothing=0.5, upscale="bilinear")
    assert "12 frames" in status and "pasted" not in status
    assert probe(local_copy(video, tmp_path, "out.mp4")).size == (64, 64)


# --- What a hostile or careless client meets -------------------------------------------

def raw_call(url, data):
    """/animate over plain HTTP, as a client that skips the upload step would call it:
    every event the server sent, as text."""
    import httpx

    event = httpx.post(url + "gradio_api/call/animate", json={"data": data}, timeout=30).json()["event_id"]
    return httpx.get(url + f"gradio_api/call/animate/{event}", timeout=120).text


def upload(url, path):
    import httpx

    with open(path, "rb") as f:
        return httpx.post(url + "gradio_api/upload", files={"files": f}, timeout=30)


@pytest.mark.parametrize("target, message", [
    ("/etc/passwd", "Only files you uploaded"),
    ("result", "Only files you uploaded"),  # another request's result, inside Gradio's folder
    ("link", "Links are not taken"),
])
def test_a_client_cannot_animate_a_file_it_did_not_upload(app_demo, app_url, media, target, message):
    import httpx

    photo, clip = media
    call(app_url, photo, clip)  # a result exists on the server
    result = next(app_demo.fomm_runs.root.glob("run-*/animation.mp4"))
    path = {"/etc/passwd": "/etc/passwd", "result": result, "link": "http://127.0.0.1:9/clip.mp4"}[target]
    from benchmarks.load_test import api_data

    source = upload(app_url, photo).json()[0]
    answer = httpx.post(app_url + "gradio_api/call/animate", json={"data": api_data(source, str(path))}, timeout=30)
    assert answer.status_code == 422 and message in answer.json()["error"], answer.text[:300]
    # The same request with an uploaded clip works: the refusal is about the path.
    assert "event: complete" in raw_call(app_url, api_data(source, upload(app_url, clip).json()[0]))


def test_api_errors_are_plain_text_naming_the_parameter(app_url, media):
    from gradio_client.exceptions import AppError

    photo, clip = media
    with pytest.raises(AppError) as caught:
        call(app_url, photo, clip, avd=True)  # a FOMM model
    message = str(caught.value)
    assert "avd=True works only with a TPSMM model; set avd=False or choose one (model=...)" in message
    assert "untick" not in message and "&" not in message


def test_api_errors_keep_markup_as_text_and_give_api_advice(tiny_files, media, tmp_path):
    """face-alignment's weights missing (an empty TORCH_HOME, no network): the message
    holds "<urlopen error ...>", unescaped, and its advice names the API's parameter."""
    from gradio_client.exceptions import AppError

    from benchmarks.serve import served_app

    photo, clip = media
    (tmp_path / "torch-home").mkdir()
    args = ["--config", tiny_files[0], "--checkpoint", tiny_files[1], "--device", "cpu"]
    with served_app(args, tmp_path, {"TORCH_HOME": str(tmp_path / "torch-home")}) as (url, _):
        with pytest.raises(AppError) as caught:
            call(url, photo, clip, crop_faces=True)
    message = str(caught.value)
    assert "Face detection needs face-alignment's weights" in message and "<urlopen error" in message
    assert "set crop_faces=False" in message and "&lt;" not in message and "untick" not in message


def test_results_folders_cannot_be_listed(app_demo, app_url, media):
    import httpx

    photo, clip = media
    call(app_url, photo, clip)
    run = next(app_demo.fomm_runs.root.glob("run-*"))
    for folder in (app_demo.fomm_runs.root, run, run.parent.parent):
        answer = httpx.get(app_url + f"gradio_api/file={folder}", timeout=30)
        assert answer.status_code in (403, 404), (folder, answer.status_code)
    # Folder names are random (tempfile.mkdtemp): not to be guessed from another's.
    names = {p.name for p in app_demo.fomm_runs.root.glob("run-*")}
    assert len(names) >= 2 and all(len(n) >= 12 for n in names)


def test_uploads_over_the_size_limit_are_refused(tiny_files, media, tmp_path):
    from benchmarks.serve import app_in_process

    photo, clip = media
    big = tmp_path / "big.mp4"
    big.write_bytes(clip.read_bytes() + bytes(300_000))
    with app_in_process(["--config", tiny_files[0], "--checkpoint", tiny_files[1], "--device", "cpu",
                         "--max-upload-mb", "0.2"]) as demo:
        assert upload(demo.local_url, photo).status_code == 200
        answer = upload(demo.local_url, big)
        assert answer.status_code == 413, answer.status_code


def long_clip(tmp_path, frames=300):
    from tests.conftest import write_video

    rng = np.random.default_rng(1)
    return write_video(tmp_path / "long.mp4", (rng.random((frames, 64, 80, 3)) * 255).astype(np.uint8))


def test_a_cancelled_run_stops_within_two_seconds_and_leaves_no_files(app_demo, app_url, media, tmp_path,
                                                                       caplog):
    import logging
    import time

    from gradio_client import handle_file

    caplog.set_level(logging.INFO, logger="fomm-space")
    photo, _ = media
    clip = long_clip(tmp_path)
    before = set(app_demo.fomm_runs.root.glob("run-*"))
    job = client_for(app_url).submit(source=handle_file(str(photo)), driving=handle_file(str(clip)),
                                     relative=True, adapt_scale=True, crop_faces=False, find_best_frame=False,
                                     model=MODEL, api_name="/animate")
    deadline = time.monotonic() + 60
    while not any("Animating" in str(out[2]) for out in job.outputs() if out and len(out) == 3):
        assert time.monotonic() < deadline and not job.done(), "the run never started animating"
        time.sleep(0.05)
    asked = time.monotonic()
    job.cancel()
    while not any("run stopped" in r.getMessage() for r in caplog.records):
        assert time.monotonic() - asked < 10, "the run did not stop"
        time.sleep(0.02)
    stopped = time.monotonic() - asked
    record = next(r for r in caplog.records if "run stopped" in r.getMessage())
    assert stopped <= 2.0 and float(record.getMessage().split()[2]) <= 2.0, record.getMessage()
    time.sleep(0.3)
    assert set(app_demo.fomm_runs.root.glob("run-*")) == before  # its folder is gone


def test_a_user_error_is_one_log_line_not_a_traceback(app_url, media, caplog, capfd):
    import logging

    from gradio_client.exceptions import AppError

    caplog.set_level(logging.INFO, logger="fomm-space")
    photo, _ = media
    capfd.readouterr()
    with pytest.raises(AppError, match="still image"):
        call(app_url, photo, photo)
    refused = [r for r in caplog.records if r.name == "fomm-space" and "refused" in r.getMessage()]
    assert len(refused) == 1 and "\n" not in refused[0].getMessage()
    assert "Traceback" not in capfd.readouterr().err


def test_the_readme_client_snippet_runs_as_written(app_url, media, tmp_path, monkeypatch):
    """The README's gradio_client example, against an app started with --config and
    --checkpoint, with only its URL changed to this test server's."""
    import re
    from pathlib import Path

    import imageio.v3 as iio

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    snippet = re.search(r"From Python, through gradio_client:\n\n```python\n(.*?)```", readme, re.S).group(1)
    assert 'Client("http://127.0.0.1:7860/")' in snippet
    photo, clip = media
    here = tmp_path / "user"
    here.mkdir()
    iio.imwrite(here / "photo.jpg", iio.imread(photo))
    shutil.copy(clip, here / "clip.mp4")
    monkeypatch.chdir(here)
    scope: dict = {}
    exec(snippet.replace("http://127.0.0.1:7860/", app_url), scope)  # noqa: S102 - our own README
    assert "frames at" in scope["status"]


def test_the_face_detector_is_chosen_per_request(app_url, media):
    """The Advanced face-detector choice reaches face-alignment: with the test's random
    weights S3FD finds the "faces" and BlazeFace none, which the page says in its words."""
    from gradio_client.exceptions import AppError

    photo, clip = media
    _, _, status = call(app_url, photo, clip, crop_faces=True, face_detector="sfd")
    assert "12 frames" in status
    with pytest.raises(AppError, match="No face found in the source photo"):
        call(app_url, photo, clip, crop_faces=True, face_detector="blazeface")
    with pytest.raises(Exception):  # not one of the choices: Gradio refuses it
        call(app_url, photo, clip, crop_faces=True, face_detector="haar")
