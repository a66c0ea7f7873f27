"""The web demo's /animate endpoint, called through gradio_client on loopback."""

import concurrent.futures
import json
import shutil
import subprocess

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
    ("unknown-model", "not in the list of choices"),
])
def test_bad_inputs_are_app_errors_with_our_message(app_url, media, tmp_path, case, message):
    from gradio_client.exceptions import AppError

    photo, clip = media
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    source, driving, kw = {"photo-as-video": (photo, photo, {}), "video-as-photo": (clip, clip, {}),
                           "text-as-video": (photo, text, {}), "unknown-model": (photo, clip, {"model": "nope"})}[case]
    with pytest.raises(AppError, match=message):
        call(app_url, source, driving, **kw)
    video, _, _ = call(app_url, photo, clip)  # the app is still up
    assert video


def test_two_concurrent_requests_both_finish(app_url, media):
    photo, clip = media
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: call(app_url, photo, clip), range(2)))
    assert all("12 frames" in status for _, _, status in results)


def test_failed_requests_leave_no_files_and_old_results_are_swept(app_demo, app_url, media, tmp_path):
    import os
    import time

    from gradio_client.exceptions import AppError

    from app import Outputs

    photo, clip = media
    runs = app_demo.fomm_runs
    before = set(runs.root.glob("run-*"))
    with pytest.raises(AppError):
        call(app_url, photo, photo)
    assert set(runs.root.glob("run-*")) == before  # the failed run's folder is gone

    store = Outputs(tmp_path / "store", keep_s=60)
    old, fresh = store.new(), store.new()
    (old / "a.mp4").write_bytes(b"x")
    past = time.time() - 120
    os.utime(old, (past, past))
    assert store.sweep() == 1
    assert not old.exists() and fresh.exists()



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


def test_on_a_space_spaces_comes_first_and_the_app_serves(tiny_files, media, tmp_path):
    """As on a Hugging Face Space (SPACE_ID set, CPU hardware): `spaces` is imported
    before torch, GPU work goes through spaces.GPU (a no-op off ZeroGPU), and it serves."""
    import ast
    import os
    import socket
    import sys
    import time
    from pathlib import Path

    pytest.importorskip("spaces")
    root = Path(__file__).resolve().parent.parent
    tree = ast.parse((root / "app.py").read_text())
    order = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Import) and n.names[0].name == "spaces"]
    first_heavy = min(n.lineno for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                      and (getattr(n, "module", None) or n.names[0].name).split(".")[0]
                      in ("gradio", "fomm_space", "torch"))
    assert order and order[0] < first_heavy
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SPACE_ID": "someone/fomm-space", "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, str(root / "app.py"), "--config", str(tiny_files[0]), "--checkpoint",
                               str(tiny_files[1]), "--device", "cpu", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 120
        while True:
            try:
                client_for(url)
                break
            except Exception:  # noqa: BLE001 - not up yet
                assert server.poll() is None and time.time() < deadline, "the app did not start"
                time.sleep(1)
        photo, clip = media
        _, _, status = call(url, photo, clip)
        assert "12 frames" in status
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_paste_back_off_and_smoothing_through_the_api(app_url, media, tmp_path):
    photo, clip = media
    video, _, status = call(app_url, photo, clip, paste_back=False, smoothing=0.5, upscale="bilinear")
    assert "12 frames" in status and "pasted" not in status
    assert probe(local_copy(video, tmp_path, "out.mp4")).size == (64, 64)
