"""The command line, run as a user runs it: a subprocess, files in, files out."""

import subprocess
import sys
from pathlib import Path

import numpy as np
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
                 "--best-frame", 3, "--no-crop", "--no-paste-back", *model_args(tiny_files))
    assert result.returncode == 0, result.stderr
    assert "12 frames at 10 fps" in result.stdout
    info = probe(out)
    assert info.size == (64, 64) and abs(info.fps - 10) < 0.01
    assert len(list(read_frames(out))) == 12
    assert probe(overlay).size == (192, 64)
    streams = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "h264" in streams and "yuv420p" in streams
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4", "overlay.mp4", "photo.png"]


def test_nvenc_asked_for_where_it_cannot_be_opened_encodes_with_x264_and_says_so(tiny_files, media, tmp_path):
    from fomm_space.video import nvenc_available

    if nvenc_available():
        pytest.skip("this machine has NVENC: nothing to fall back from")
    photo, clip = media
    out, overlay = tmp_path / "out.mp4", tmp_path / "overlay.mp4"
    result = run("animate", "--source", photo, "--driving", clip, "--output", out, "--overlay", overlay,
                 "--no-crop", "--encoder", "nvenc", *model_args(tiny_files))
    assert result.returncode == 0, result.stderr
    assert "12 frames at 10 fps" in result.stdout and "encoded with x264" in result.stdout
    assert result.stderr.count("NVENC could not be opened") == 2  # the video and the overlay, a line each
    assert len(list(read_frames(out))) == len(list(read_frames(overlay))) == 12
    bad = run("animate", "--source", photo, "--driving", clip, "--output", out, "--encoder", "vp9",
              *model_args(tiny_files))
    assert bad.returncode == 2 and bad.stderr.startswith("error: argument --encoder: invalid choice: 'vp9'")
    assert len(bad.stderr.splitlines()) == 1


@pytest.mark.parametrize("case, message", [
    ("missing-photo", "does not exist"),
    ("text-as-photo", "not an image"),
    ("photo-as-video", "is a still image, not a video"),
    ("bad-best-frame", "past the end"),
    ("unknown-model", "invalid choice"),
    ("upscale-without-paste-back", "--upscale only applies when the face is pasted back"),
])
def test_bad_inputs_give_one_line_and_no_output(tiny_files, face_weights, media, tmp_path, case, message):
    photo, clip = media
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    args = {"missing-photo": ["--source", tmp_path / "nope.png", "--driving", clip],
            "text-as-photo": ["--source", fake, "--driving", clip],
            "photo-as-video": ["--source", photo, "--driving", photo],
            "bad-best-frame": ["--source", photo, "--driving", clip, "--best-frame", 50],
            "unknown-model": ["--source", photo, "--driving", clip, "--model", "nope"],
            "upscale-without-paste-back": ["--source", photo, "--driving", clip, "--no-paste-back",
                                           "--upscale", "bilinear"]}[case]
    out = tmp_path / "out.mp4"
    extra = [] if case == "unknown-model" else model_args(tiny_files)
    result = run("animate", *args, "--output", out, *extra)
    assert result.returncode != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_models_lists_both_families():
    result = run("models")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "First Order Motion Model (2019):" and lines[9] == "Thin-Plate Spline Motion Model (2022):"
    assert [line.split()[0] for line in lines if line.startswith("  ")] == [
        "vox", "vox-adv", "taichi", "taichi-adv", "fashion", "mgif", "nemo", "bair",
        "tps-vox", "tps-taichi", "tps-ted", "tps-mgif"]


def test_two_second_clip_with_sound_gives_playable_h264_with_sound_and_overlay(tiny_files, face_weights, media,
                                                                               tmp_path):
    photo, _ = media
    clip = tmp_path / "talk.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)], check=True)
    out, overlay, preview = tmp_path / "out.mp4", tmp_path / "keypoints.mp4", tmp_path / "preview.png"
    result = run("animate", "--source", photo, "--driving", clip, "--output", out, "--overlay", overlay,
                 "--preview", preview, "--crop-scale", "1.5", *model_args(tiny_files))  # faces cropped
    assert result.returncode == 0, result.stderr
    assert f"wrote {out} and {overlay} and {preview}" in result.stdout
    streams = ffprobe(out)
    assert [s["codec_type"] for s in streams] == ["video", "audio"]
    video, audio = streams
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p" and audio["codec_name"] == "aac"
    assert int(video["nb_read_frames"]) == 20
    assert abs(float(audio["duration"]) - 2.0) < 0.1
    assert probe(out).has_audio
    assert len(list(read_frames(overlay))) == 20  # the overlay plays to the end
    assert ffprobe(overlay)[0]["codec_name"] == "h264"
    assert preview.stat().st_size > 0


def ffprobe(path):
    """Stream facts from ffprobe (Debian's, from packages.txt), every frame decoded and counted."""
    import json
    import shutil

    exe = shutil.which("ffprobe")
    if exe is None:
        pytest.skip("ffprobe is not installed (apt-get install ffmpeg)")
    out = subprocess.run([exe, "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"]


def test_crop_command_writes_the_face_video_with_sound(face_weights, tmp_path):
    clip = tmp_path / "talk.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)], check=True)
    out = tmp_path / "face.mp4"
    result = run("crop", "--input", clip, "--output", out, "--size", 128)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "10 frames" in result.stdout
    info = probe(out)
    assert info.size == (128, 128) and info.has_audio
    bad = run("crop", "--input", tmp_path / "missing.mp4", "--output", tmp_path / "x.mp4")
    assert bad.returncode == 1 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_paste_back_keeps_the_photo_size_and_its_pixels_outside_the_crop(tiny_files, tmp_path, media):
    from PIL import Image

    _, clip = media
    yy, xx = np.mgrid[0:960, 0:1280]
    photo = np.stack([xx * 255 // 1279, yy * 255 // 959, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "big.png")
    out = tmp_path / "out.mp4"
    result = run("animate", "--source", tmp_path / "big.png", "--driving", clip, "--output", out, "--no-crop",
                 "--paste-back", *model_args(tiny_files))
    assert result.returncode == 0, result.stderr
    assert "1280x960 pasted into the photo" in result.stdout
    frames = list(read_frames(out))
    assert len(frames) == 12 and frames[0].shape == (960, 1280, 3)
    assert ffprobe(out)[0]["codec_name"] == "h264"
    # the crop is the centred 960x960 square (x 160..1120); the mark sits in the lower right
    for frame in (frames[0], frames[-1]):
        for rows, cols in ((slice(None), slice(0, 160)), (slice(0, 780), slice(1120, None))):
            diff = np.abs(frame[rows, cols].astype(int) - photo[rows, cols])
            assert diff.max() <= 6  # codec error
    assert np.abs(frames[0][300:660, 300:980].astype(int) - photo[300:660, 300:980]).mean() > 5  # animated inside


def test_best_frame_search_smoothing_and_upscaler_from_the_command_line(tiny_files, face_weights, media, tmp_path):
    photo, clip = media
    out = tmp_path / "out.mp4"
    result = run("animate", "--source", photo, "--driving", clip, "--output", out, "--find-best-frame",
                 "--smooth", 0.5, "--upscale", "bilinear", *model_args(tiny_files))
    assert result.returncode == 0, result.stderr
    assert "reference frame" in result.stdout and "12 frames" in result.stdout
    bad = run("animate", "--source", photo, "--driving", clip, "--output", out, "--smooth", 2,
              *model_args(tiny_files))
    assert bad.returncode == 1 and "smoothing must be between 0" in bad.stderr


def test_face_detector_flag_chooses_face_alignments_detector(tiny_files, media, tmp_path, face_weights):
    """--face-detector reaches face-alignment: its BlazeFace (random weights here, like
    the S3FD that finds the test's "faces") finds no face and says so in one line; an
    unknown name is refused by the flag."""
    photo, clip = media
    args = ["animate", "--source", photo, "--driving", clip, "--output", tmp_path / "out.mp4",
            *model_args(tiny_files)]
    assert run(*args, "--face-detector", "sfd").returncode == 0
    refused = run(*args, "--face-detector", "blazeface")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: No face found in the source "
                                                                              "photo."), refused.stderr
    bad = run(*args, "--face-detector", "haar")
    assert bad.returncode == 2 and "--face-detector" in bad.stderr
