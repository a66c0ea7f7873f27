"""The command line, run as a user runs it: a subprocess, files in, files out."""

import subprocess
import sys
from pathlib import Path

import pytest

from fomm_space.video import ffmpeg_exe, probe, read_frames

ROOT = Path(__file__).resolve().parent.parent


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "fomm_space", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def model_args(tiny_files):
    return ["--config", tiny_files[0], "--checkpoint", tiny_files[1], "--device", "cpu"]


def test_animate_writes_video_and_overlay(tiny_files, media, tmp_path):
    photo, clip = media
    out, overlay = tmp_path / "out.mp4", tmp_path / "overlay.mp4"
    result = run("animate", "--source", photo, "--driving", clip, "--output", out, "--overlay", overlay,
                 "--best-frame", 3, "--no-crop", *model_args(tiny_files))
    assert result.returncode == 0, result.stderr
    assert "12 frames at 10 fps" in result.stdout
    info = probe(out)
    assert info.size == (64, 64) and abs(info.fps - 10) < 0.01
    assert len(list(read_frames(out))) == 12
    assert probe(overlay).size == (192, 64)
    streams = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "h264" in streams and "yuv420p" in streams
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4", "overlay.mp4", "photo.png"]


@pytest.mark.parametrize("case, message", [
    ("missing-photo", "does not exist"),
    ("text-as-photo", "not an image"),
    ("photo-as-video", "is a still image, not a video"),
    ("bad-best-frame", "past the end"),
    ("unknown-model", "invalid choice"),
])
def test_bad_inputs_give_one_line_and_no_output(tiny_files, media, tmp_path, case, message):
    photo, clip = media
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    args = {"missing-photo": ["--source", tmp_path / "nope.png", "--driving", clip],
            "text-as-photo": ["--source", fake, "--driving", clip],
            "photo-as-video": ["--source", photo, "--driving", photo],
            "bad-best-frame": ["--source", photo, "--driving", clip, "--best-frame", 50],
            "unknown-model": ["--source", photo, "--driving", clip, "--model", "nope"]}[case]
    out = tmp_path / "out.mp4"
    extra = [] if case == "unknown-model" else model_args(tiny_files)
    result = run("animate", *args, "--output", out, *extra)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_models_lists_all_eight():
    result = run("models")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "vox", "vox-adv", "taichi", "taichi-adv", "fashion", "mgif", "nemo", "bair"]


def test_driving_sound_is_kept_and_trimmed(tiny_files, media, tmp_path):
    photo, _ = media
    clip = tmp_path / "talk.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=80x64:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)], check=True)
    out = tmp_path / "out.mp4"
    result = run("animate", "--source", photo, "--driving", clip, "--output", out, *model_args(tiny_files))
    assert result.returncode == 0, result.stderr
    streams = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "Audio: aac" in streams and "Video: h264" in streams
    assert probe(out).has_audio
    assert len(list(read_frames(out))) == 20
