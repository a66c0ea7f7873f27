"""The bad-input matrix, each case through the CLI (one line on stderr, non-zero exit,
no output left) and through the web demo (an AppError with our message, app still up)."""

import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from fomm_space.video import ffmpeg_exe
from tests.conftest import PARITY

ROOT = Path(__file__).resolve().parent.parent


def png_header_only(path, width, height):
    """A PNG that declares width x height pixels but holds no image data (a few bytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def ff(*args):
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


@pytest.fixture()
def files(tmp_path, media):
    photo, clip = media
    d = tmp_path / "in"
    d.mkdir()
    (d / "text.png").write_text("this is not an image")
    data = clip.read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    ff("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", d / "audio-only.mp4")
    png_header_only(d / "huge.png", 30000, 30000)
    ff("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=3", "-c:v", "libx264", "-pix_fmt", "yuv420p",
       d / "long.mp4")
    ff("-f", "lavfi", "-i", "testsrc=size=64x48:rate=240:duration=0.2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
       d / "fast.mp4")
    ff("-f", "lavfi", "-i", "testsrc=size=4160x32:rate=10:duration=0.2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
       d / "wide.mp4")
    from PIL import Image
    rng = np.random.default_rng(0)
    rgb = (rng.random((48, 80, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb[..., 0]).save(d / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full((48, 80), 128, np.uint8)])).save(d / "rgba.png")
    Image.fromarray((rng.random((48, 80)) * 65535).astype(np.uint16)).save(d / "16bit.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to view
    Image.fromarray(rgb).save(d / "exif.jpg", exif=exif)
    with open(d / "evil.pth.tar", "wb") as f:
        pickle.dump({"generator": {}, "kp_detector": {}, "x": _RunsCode()}, f)
    ckpt = (PARITY / "tiny-vox" / "checkpoint.pth.tar").read_bytes()
    (d / "cut.pth.tar").write_bytes(ckpt[: len(ckpt) // 2])
    return {"photo": photo, "clip": clip, **{p.name: p for p in d.iterdir()}}


# case -> (source, driving, extra CLI args, message)
CASES = {
    "text-as-png": ("text.png", "clip", [], "not an image"),
    "missing-file": ("missing.png", "clip", [], "does not exist"),
    "truncated-mp4": ("photo", "truncated.mp4", [], "can't be read as a video"),
    "image-as-video": ("photo", "photo", [], "still image, not a video"),
    "video-as-image": ("clip", "clip", [], "not an image"),
    "no-video-frames": ("photo", "audio-only.mp4", [], "can't be read as a video"),
    "30000x30000-png": ("huge.png", "clip", [], "megapixels"),
    "too-high-fps": ("photo", "fast.mp4", [], "frames per second"),
    "too-large": ("photo", "wide.mp4", [], "limit is 4096"),
}
ACCEPTED = ["grey.png", "rgba.png", "16bit.png", "exif.jpg"]
CHECKPOINTS = {
    "pickle-with-code": (["--config", PARITY / "tiny-vox" / "config.yaml", "--checkpoint", "evil.pth.tar"],
                         "refused|code"),
    "truncated-checkpoint": (["--config", PARITY / "tiny-vox" / "config.yaml", "--checkpoint", "cut.pth.tar"],
                             "truncated"),
    "other-model": (["--config", PARITY / "tiny-vox" / "config.yaml", "--checkpoint",
                     PARITY / "tiny-mgif" / "checkpoint.pth.tar"], "another model|missing|shape"),
    "missing-config": (["--config", "nope.yaml", "--checkpoint", PARITY / "tiny-vox" / "checkpoint.pth.tar"],
                       "does not exist|not found"),
    "unknown-model": (["--model", "nope"], "invalid choice"),
}
TINY = ["--config", PARITY / "tiny-vox" / "config.yaml", "--checkpoint", PARITY / "tiny-vox" / "checkpoint.pth.tar"]


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fomm_space", "animate", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def resolve(files, name, tmp_path):
    return files.get(name, tmp_path / name)


def assert_clean_failure(result, message, out_dir):
    import re

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert re.search(message, lines[-1]), lines
    assert not list(out_dir.iterdir()), "no output (or temporary file) may be left"


@pytest.mark.parametrize("case", list(CASES))
def test_cli_bad_input(case, files, tmp_path, face_weights):
    source, driving, extra, message = CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    result = cli("--source", resolve(files, source, tmp_path), "--driving", resolve(files, driving, tmp_path),
                 "--output", out / "o.mp4", "--overlay", out / "k.mp4", "--max-seconds", 2, *extra, *TINY,
                 cwd=tmp_path)
    assert_clean_failure(result, message, out)


@pytest.mark.parametrize("case", list(CHECKPOINTS))
def test_cli_bad_checkpoint(case, files, tmp_path):
    model_args, message = CHECKPOINTS[case]
    out = tmp_path / "out"
    out.mkdir()
    args = [resolve(files, a, tmp_path) if isinstance(a, str) and a in files else a for a in model_args]
    result = cli("--source", files["photo"], "--driving", files["clip"], "--output", out / "o.mp4", *args,
                 cwd=tmp_path)
    assert_clean_failure(result, message, out)
    assert not (tmp_path / "pwned-by-checkpoint").exists()


def test_cli_long_clip_is_cut_with_a_note(files, tmp_path):
    out = tmp_path / "o.mp4"
    result = cli("--source", files["photo"], "--driving", files["long.mp4"], "--output", out, "--max-seconds", 1,
                 "--no-crop", *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cut there" in result.stderr and "10 frames" in result.stdout


@pytest.mark.parametrize("photo", ACCEPTED)
def test_cli_accepts_unusual_photos(photo, files, tmp_path):
    out = tmp_path / "o.mp4"
    result = cli("--source", files[photo], "--driving", files["clip"], "--output", out, "--no-crop", *TINY,
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_exif_rotation_is_applied(files, tiny_model, tmp_path):
    from fomm_space import AnimationOptions
    from fomm_space.crop import center_box
    from fomm_space.pipeline import animate_files

    report = animate_files(tiny_model, files["exif.jpg"], files["clip"], tmp_path / "o.mp4",
                           options=AnimationOptions(crop=False))
    assert report.source_box == center_box(80, 48)  # stored 80 wide x 48 high, shown 48 x 80


# --- the same matrix through the web demo ---------------------------------------------

APP_MESSAGES = {**{k: v[3] for k, v in CASES.items()}, "missing-file": "source is missing: give a photo"}


def app_call(url, source, driving, **kw):
    from gradio_client import Client, handle_file

    params = dict(relative=True, adapt_scale=True, crop_faces=True, find_best_frame=False, model="checkpoint.pth.tar",
                  max_seconds=2)
    params.update(kw)
    return Client(url, verbose=False).predict(source=handle_file(str(source)) if source else None,
                                              driving=handle_file(str(driving)), api_name="/animate", **params)


@pytest.mark.parametrize("case", list(CASES))
def test_app_bad_input(case, files, tmp_path, app_url):
    pytest.importorskip("gradio_client")
    from gradio_client.exceptions import AppError

    source, driving, _, _ = CASES[case]
    source_path = None if case == "missing-file" else resolve(files, source, tmp_path)
    with pytest.raises(AppError, match=APP_MESSAGES[case]):
        app_call(app_url, source_path, resolve(files, driving, tmp_path))


@pytest.mark.parametrize("photo", ACCEPTED)
def test_app_accepts_unusual_photos(photo, files, app_url):
    pytest.importorskip("gradio_client")
    video, _, status = app_call(app_url, files[photo], files["clip"], crop_faces=False)
    assert "12 frames" in status


def test_app_long_clip_is_cut_and_says_so(files, app_url):
    pytest.importorskip("gradio_client")
    _, _, status = app_call(app_url, files["photo"], files["long.mp4"], crop_faces=False, max_seconds=1)
    assert "10 frames" in status and "clip cut at 10 frames, 1 s" in status


@pytest.mark.parametrize("case", ["pickle-with-code", "truncated-checkpoint", "other-model"])
def test_app_with_a_bad_checkpoint_answers_with_our_message(case, files, tmp_path, monkeypatch):
    pytest.importorskip("gradio_client")
    from gradio_client.exceptions import AppError

    from benchmarks.serve import app_in_process

    monkeypatch.chdir(tmp_path)
    model_args, message = CHECKPOINTS[case]
    args = [str(resolve(files, a, tmp_path) if isinstance(a, str) and a in files else a) for a in model_args]
    with app_in_process([*args, "--device", "cpu"]) as demo:
        with pytest.raises(AppError, match=message):
            app_call(demo.local_url, files["photo"], files["clip"], crop_faces=False,
                     model=Path(args[3]).name)
    assert not (tmp_path / "pwned-by-checkpoint").exists()
