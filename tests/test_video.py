"""Video in and out, on clips the tests make with ffmpeg: containers, rotation, sound, limits."""

import subprocess

import numpy as np
import pytest

from fomm_space.errors import InputError
from fomm_space.video import MAX_FPS, VideoWriter, ffmpeg_exe, probe, read_frames


def make_clip(path, *, size="64x48", rate=10, seconds=1, sound=False, extra=()):
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
           f"testsrc=size={size}:rate={rate}:duration={seconds}"]
    if sound:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}", "-shortest"]
    subprocess.run([*cmd, *extra, str(path)], check=True)
    return path


def streams(path):
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


@pytest.mark.parametrize("suffix, extra", [
    (".mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"]),
    (".mov", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"]),
    (".webm", ["-c:v", "libvpx", "-c:a", "libopus"]),
    (".gif", []),
])
def test_every_container_round_trips_to_h264_mp4(tmp_path, suffix, extra):
    sound = suffix != ".gif"
    clip = make_clip(tmp_path / f"in{suffix}", sound=sound, extra=extra)
    info = probe(clip)
    assert info.size == (64, 48) and info.fps == pytest.approx(10) and info.has_audio == sound
    frames = list(read_frames(clip))
    assert len(frames) == 10 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    out = tmp_path / "out.mp4"
    with VideoWriter(out, info.fps, audio_from=clip if info.has_audio else None) as writer:
        for frame in frames:
            writer.write(frame)
    back = list(read_frames(out))
    assert len(back) == 10
    assert np.abs(back[5].astype(int) - frames[5]).mean() < 12  # codec error (4:2:0 on a tiny busy test card)
    text = streams(out)
    assert "Video: h264" in text and "yuv420p" in text and ("Audio: aac" in text) == sound
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([clip.name, "out.mp4"])


def test_rotation_metadata_is_applied(tmp_path):
    plain = make_clip(tmp_path / "plain.mp4", size="64x48", extra=["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90", "-i", str(plain),
                    "-c", "copy", str(rotated)], check=True)
    assert probe(rotated).size == (48, 64)
    upright, turned = next(read_frames(plain)), next(read_frames(rotated))
    assert turned.shape == (64, 48, 3)
    assert np.abs(np.rot90(upright, 1).astype(int) - turned).mean() < 3
    small = next(read_frames(rotated, size=(24, 32)))  # scaled by ffmpeg after the rotation
    assert small.shape == (32, 24, 3)
    assert np.abs(turned.reshape(32, 2, 24, 2, 3).mean(axis=(1, 3)) - small).mean() < 10  # scaled in YUV


@pytest.mark.parametrize("suffix, extra", [
    (".mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"]),
    (".mp4", ["-c:v", "libx264", "-pix_fmt", "yuv444p"]),
    (".gif", []),
], ids=["yuv420p", "yuv444p", "gif"])
def test_a_region_is_cut_by_ffmpeg_exactly_as_from_the_whole_frame(tmp_path, suffix, extra):
    clip = make_clip(tmp_path / f"c{suffix}", size="66x50", extra=extra)
    whole = list(read_frames(clip))
    for left, top, right, bottom in [(0, 0, 66, 50), (3, 5, 41, 43), (1, 0, 2, 1), (21, 11, 66, 50)]:
        part = list(read_frames(clip, region=(left, top, right, bottom), step=2))
        assert len(part) == 5 and part[0].shape == (bottom - top, right - left, 3)
        for got, frame in zip(part, whole[::2]):
            assert np.array_equal(got, frame[top:bottom, left:right])  # colours not resampled at the cut
    with pytest.raises(ValueError):
        next(read_frames(clip, region=(10, 10, 5, 20)))
    with pytest.raises(ValueError):
        next(read_frames(clip, region=(0, 0, 5, 5), size=(8, 8)))


def test_a_region_is_cut_after_the_rotation(tmp_path):
    plain = make_clip(tmp_path / "plain.mp4", size="64x48", extra=["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90", "-i", str(plain),
                    "-c", "copy", str(rotated)], check=True)
    turned = next(read_frames(rotated))  # 48 wide, 64 high
    assert np.array_equal(next(read_frames(rotated, region=(5, 30, 45, 63))), turned[30:63, 5:45])


def test_odd_sizes_are_padded_to_even(tmp_path):
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 10) as writer:
        for _ in range(3):
            writer.write(np.full((33, 45, 3), 128, np.uint8))
    assert probe(out).size == (46, 34)


def test_step_and_max_frames(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", seconds=2, extra=["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    assert len(list(read_frames(clip, max_frames=7))) == 7
    assert len(list(read_frames(clip, step=3))) == 7  # frames 0, 3, ..., 18
    assert len(list(read_frames(clip, max_frames=10, step=4))) == 3


def test_limits_are_clear_errors(tmp_path):
    fast = make_clip(tmp_path / "fast.mp4", rate=int(MAX_FPS * 2), extra=["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    with pytest.raises(InputError, match="frames per second"):
        probe(fast)
    wide = make_clip(tmp_path / "wide.mp4", size="4160x16", seconds=0.2,
                     extra=["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    with pytest.raises(InputError, match="limit is 4096"):
        probe(wide)


def test_unreadable_and_empty_files(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("hello")
    with pytest.raises(InputError, match="can't be read as a video"):
        probe(text)
    clip = make_clip(tmp_path / "c.mp4", extra=["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: len(clip.read_bytes()) // 3])
    with pytest.raises(InputError):
        list(read_frames(cut))


@pytest.mark.parametrize("shape, frames", [((48, 64, 3), 30), ((480, 640, 3), 12)],
                         ids=["small (seen at the end)", "large (seen while writing)"])
def test_nvenc_where_it_cannot_be_opened_falls_back_to_x264_with_every_frame(tmp_path, caplog, shape, frames):
    from fomm_space.video import nvenc_available

    if nvenc_available():
        pytest.skip("this machine has NVENC: nothing to fall back from")
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 10, encoder="nvenc") as writer:
        for i in range(frames):
            writer.write(np.full(shape, 8 * i, np.uint8))
    assert writer.encoder == "x264"
    assert "NVENC could not be opened" in caplog.text
    back = list(read_frames(out))
    assert [round(float(f.mean()) / 8) for f in back] == list(range(frames))  # all of them, in order
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.mark.parametrize("shape", [(48, 64, 3), (480, 640, 3)])
def test_an_encoder_that_fails_is_one_clear_error_and_leaves_nothing(tmp_path, shape):
    import shutil

    from fomm_space.errors import OutputError

    folder = tmp_path / "gone"
    folder.mkdir()
    writer = VideoWriter(folder / "out.mp4", 10)
    shutil.rmtree(folder)  # the folder is lost while the video is written
    with pytest.raises(OutputError, match=r"Writing out\.mp4 failed.*No such file or directory") as info:
        with writer:
            for _ in range(10):
                writer.write(np.zeros(shape, np.uint8))
    assert "\n" not in str(info.value) and ".out." not in str(info.value)  # one line, no temporary name
    assert not folder.exists()


def test_the_nvenc_settings_are_ones_this_ffmpeg_takes():
    """Checked before a GPU is looked for: where none is, the trial fails on the device,
    not on a setting."""
    from fomm_space.video import NVENC_OPTIONS

    said = subprocess.run([ffmpeg_exe(), "-hide_banner", "-v", "error", "-f", "lavfi", "-i", "color=s=64x64",
                           "-frames:v", "1", "-c:v", "h264_nvenc", *NVENC_OPTIONS, "-f", "null", "-"],
                          capture_output=True, text=True).stderr
    assert "Unable to parse" not in said and "not found" not in said.lower()
    assert "Unknown encoder" not in said  # the build has NVENC


def test_the_encoder_is_chosen_by_device():
    from fomm_space.video import nvenc_available, video_encoder

    assert video_encoder("auto", "cpu") == "x264" and video_encoder("x264", "cuda:0") == "x264"
    assert video_encoder("nvenc", "cpu") == "nvenc"  # asked for: tried, x264 if it can't be opened
    assert video_encoder("auto", "cuda") == ("nvenc" if nvenc_available() else "x264")
    with pytest.raises(InputError, match="encoder must be one of"):
        video_encoder("h265")
    with pytest.raises(InputError, match="x264 or nvenc"):
        VideoWriter("out.mp4", 10, encoder="auto")


def test_failed_writer_leaves_nothing(tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 10) as writer:
            writer.write(np.zeros((16, 16, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def audio_seconds(path):
    """The length of a file's sound: its last packet's end, as ffmpeg counts it copying."""
    import re

    text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:a:0", "-c", "copy", "-f", "null",
                           "-"], capture_output=True, text=True).stderr
    h, m, sec = re.findall(r"time=(\d+):(\d+):([\d.]+)", text)[-1]
    return int(h) * 3600 + int(m) * 60 + float(sec)


@pytest.mark.parametrize("sound_seconds, frames, limit, expected", [
    (3, 20, None, 2.0),   # the sound is cut to the video
    (3, 20, 1.0, 1.0),    # at most ``audio_seconds`` of it is prepared
    (1, 30, None, 1.0),   # a shorter sound: the video keeps all its frames
])
def test_the_sound_is_encoded_while_the_frames_come_and_cut_to_the_video(tmp_path, sound_seconds, frames, limit,
                                                                        expected):
    clip = make_clip(tmp_path / "in.mp4", seconds=sound_seconds, sound=True,
                     extra=["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"])
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 10, audio_from=clip, audio_seconds=limit) as writer:
        for frame in range(frames):
            writer.write(np.full((48, 64, 3), 8 * frame, np.uint8))
    assert len(list(read_frames(out))) == frames
    assert "Audio: aac" in streams(out)
    assert audio_seconds(out) == pytest.approx(expected, abs=0.03)  # within an AAC frame (1024 samples)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


def test_a_sound_that_cannot_be_read_is_a_clear_error_soon_and_leaves_nothing(tmp_path):
    import time

    silent = make_clip(tmp_path / "silent.mp4", extra=["-c:v", "libx264", "-pix_fmt", "yuv420p"])
    out = tmp_path / "out.mp4"
    writer = VideoWriter(out, 10, audio_from=silent)  # a file without the sound it is said to have
    writer.write(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(InputError, match=r"The sound of silent\.mp4 can't be read \(.*matches no streams"):
        writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["silent.mp4"]
    with pytest.raises(InputError, match="The sound of silent.mp4 can't be read") as info:
        with VideoWriter(out, 10, audio_from=silent) as writer:
            for _ in range(1000):  # said while the frames come, not after the last
                writer.write(np.zeros((48, 64, 3), np.uint8))
                time.sleep(0.01)
    assert writer.frames < 1000 and "\n" not in str(info.value)
    assert [p.name for p in tmp_path.iterdir()] == ["silent.mp4"]
    with pytest.raises(RuntimeError):  # and while the sound is still being encoded
        with VideoWriter(out, 10, audio_from=make_clip(tmp_path / "long.mp4", seconds=30, sound=True)):
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4", "silent.mp4"]


def test_the_writers_own_yuv_conversion_is_ffmpegs_within_codec_error(tmp_path):
    """Frames go to x264 as YUV 4:2:0 converted here (OpenCV); the file decodes as it
    did when ffmpeg converted RGB itself, within codec error. (On the example face the
    two files are 44.5 dB apart, and ours is 0.9 dB further from the frames: OpenCV
    averages the chroma 2x2 where ffmpeg filters it with a wider vertical kernel.)"""
    from PIL import Image

    from fomm_space.frames import resize
    from fomm_space.video import X264_OPTIONS

    face = np.asarray(Image.open("examples/face.png").convert("RGB"))
    frames = [np.roll(resize(face, (240, 320)), 4 * i, axis=1) for i in range(10)]
    with VideoWriter(tmp_path / "ours.mp4", 10) as writer:
        for frame in frames:
            writer.write(frame)
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "320x240",
                    "-r", "10", "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", *X264_OPTIONS,
                    str(tmp_path / "ffmpeg.mp4")], input=b"".join(f.tobytes() for f in frames), check=True)

    def psnr(a, b):
        return 10 * np.log10(255 ** 2 / np.mean((a.astype(float) - b) ** 2))

    ours, theirs = list(read_frames(tmp_path / "ours.mp4")), list(read_frames(tmp_path / "ffmpeg.mp4"))
    assert len(ours) == len(theirs) == 10
    assert np.mean([psnr(o, t) for o, t in zip(ours, theirs)]) >= 40
    assert np.mean([psnr(o, f) for o, f in zip(ours, frames)]) >= np.mean([psnr(t, f) for t, f in
                                                                           zip(theirs, frames)]) - 1.0
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    with VideoWriter(tmp_path / "red.mp4", 10) as writer:
        writer.write(red)
    assert np.abs(next(read_frames(tmp_path / "red.mp4")).astype(int) - red).max() <= 6  # the colours' order


def test_a_frame_that_is_not_rgb_is_refused(tmp_path):
    with VideoWriter(tmp_path / "x.mp4", 10) as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        with pytest.raises(InputError, match="RGB"):
            writer.write(np.zeros((16, 16), np.uint8))


def test_the_encoders_settings_give_the_pictures_cabac_would(tmp_path):
    """CAVLC for CABAC only changes how the same decisions are written: the decoded
    frames are equal bit for bit (the file is larger)."""
    from fomm_space.video import X264_OPTIONS

    rng = np.random.default_rng(5)
    frames = [np.clip(rng.normal(128, 40, (96, 128, 3)), 0, 255).astype(np.uint8) for _ in range(8)]
    paths = []
    for name, params in (("cavlc", X264_OPTIONS), ("cabac", (*X264_OPTIONS[:3], X264_OPTIONS[3] + ":cabac=1"))):
        paths.append(tmp_path / f"{name}.mp4")
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "128x96",
                        "-r", "10", "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", *params,
                        "-threads", "1", str(paths[-1])], input=b"".join(f.tobytes() for f in frames), check=True)
    cavlc, cabac = (list(read_frames(p)) for p in paths)
    assert len(cavlc) == 8 and all(np.array_equal(a, b) for a, b in zip(cavlc, cabac))
    assert paths[0].stat().st_size > paths[1].stat().st_size
