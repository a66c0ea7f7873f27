"""The one module that reads and writes video files (with the ffmpeg of imageio-ffmpeg).

Frames are streamed: a clip is never held in memory whole. Output is written to a
temporary file beside the target and moved into place only once complete.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import InputError, OutputError

_logger = logging.getLogger(__name__)

MAX_SIDE = 4096    # pixels, either side of a driving video
MAX_FPS = 120.0    # frames per second of a driving video


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary that imageio-ffmpeg ships (or FFMPEG_BINARY)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg reports of a video: ``size`` is (width, height) after rotation."""

    fps: float
    size: tuple[int, int]
    duration: float
    frame_count: int | None
    has_audio: bool


def _is_still_image(path: Path) -> bool:
    """True for a photo (one frame), which ffmpeg would otherwise read as a 1-frame video."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return getattr(img, "n_frames", 1) <= 1
    except Exception:  # noqa: BLE001 - not an image Pillow reads: ffmpeg decides
        return False


# ffmpeg's demuxers a video is read with, by the first bytes of the file. Only formats
# that hold their media inside the file: a playlist or a concat list (hls, concat,
# ffconcat) or an image sequence pattern names other files, which ffmpeg would read.
_MOV_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid")
_PLAYLIST_STARTS = (b"#EXTM3U", b"ffconcat", b"file ", b"file\t", b"#EXT-X-")


def container(path: str | Path) -> str:
    """The ffmpeg demuxer to read ``path`` with: "mov" (mp4, mov), "matroska" (mkv,
    webm) or "gif", told from the file's first bytes, never from its name. Anything
    else, playlists included, is an InputError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except FileNotFoundError as e:
        raise InputError(f"Video {path} does not exist.") from e
    except OSError as e:
        raise InputError(f"{path.name} can't be read ({e.strerror or type(e).__name__}).") from e
    if head[4:8] in _MOV_BOXES:
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_PLAYLIST_STARTS):
        raise InputError(f"{path.name} is a playlist that names other files, not a video; give the video "
                         "itself (mp4, mov, webm or gif).")
    raise InputError(f"{path.name} can't be read as a video; use an mp4, mov, webm or gif file.")


def input_options(path: str | Path) -> list[str]:
    """ffmpeg's options before ``-i path``: local files only, and the demuxer of
    :func:`container`, so that ffmpeg neither guesses a format nor opens another file."""
    return ["-protocol_whitelist", "file", "-f", container(path)]


def _open_reader(path: Path, output_params: list[str] | None = None):
    """imageio-ffmpeg's frame generator of ``path`` (rgb24, decoded on
    :func:`ffmpeg_threads` threads) and its metadata; InputError where it can't be read."""
    import imageio_ffmpeg

    if not path.is_file():
        raise InputError(f"Video {path} does not exist.")
    if _is_still_image(path):
        raise InputError(f"{path.name} is a still image, not a video; give a video (mp4, mov, webm or gif) "
                         "as the driving clip.")
    safe = input_options(path)
    # imageio-ffmpeg warns when rotation metadata swaps the frame size; that is expected.
    logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)
    try:
        gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", output_params=output_params,
                                         input_params=["-threads", str(ffmpeg_threads()), *safe])
        meta = next(gen)
        meta["size"] = tuple(int(v) for v in meta["size"])
        if len(meta["size"]) != 2 or min(meta["size"]) < 1:
            raise ValueError(f"frame size {meta['size']}")
    except MemoryError as e:
        raise InputError(f"{path.name} can't be read: decoding it ran out of memory.") from e
    except Exception as e:  # whatever ffmpeg's reader raises on a damaged file
        raise InputError(f"{path.name} can't be read as a video; use an mp4, mov, webm or gif file.") from e
    return gen, meta


def _number(value: object) -> float:
    """A finite, non-negative float from ffmpeg's metadata, else 0."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return number if np.isfinite(number) and number > 0 else 0.0


def probe(path: str | Path) -> VideoInfo:
    """Frame rate, size (rotation applied), duration and whether there is sound.

    Raises InputError for unreadable files and for videos over :data:`MAX_SIDE` pixels
    or :data:`MAX_FPS` frames per second.
    """
    path = Path(path)
    gen, meta = _open_reader(path)
    gen.close()
    fps, duration = _number(meta.get("fps")), _number(meta.get("duration"))
    fps = fps if fps > 0 else 25.0
    size = meta["size"]
    if max(size) > MAX_SIDE:
        raise InputError(f"{path.name} is {size[0]}x{size[1]} pixels; the limit is {MAX_SIDE} on either side. "
                         "Scale the video down (720p is plenty: faces are cropped to 256x256).")
    if fps > MAX_FPS:
        raise InputError(f"{path.name} has {fps:g} frames per second; the limit is {MAX_FPS:g}. "
                         "Convert it to 30 fps and try again.")
    count = int(round(duration * fps)) if duration > 0 else None
    return VideoInfo(fps=fps, size=size, duration=duration, frame_count=count,  # type: ignore[arg-type]
                     has_audio=bool(meta.get("audio_codec")))


def scaled_size(size: tuple[int, int], factor: float) -> tuple[int, int]:
    """(width, height) of frames of ``size`` (width, height) scaled by ``factor``."""
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))


def read_frames(path: str | Path, *, max_frames: int | None = None, step: int = 1,
                size: tuple[int, int] | None = None,
                region: tuple[int, int, int, int] | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video as (H, W, 3) uint8 RGB, one at a time (rotation applied).

    Only the first ``max_frames`` are read; of those, every ``step``-th is yielded
    (frames 0, step, 2*step, ...). With ``size`` (width, height), ffmpeg scales the
    frames to it (area averaging, after the rotation) as it decodes them: see
    :func:`scaled_size`. With ``region`` (left, top, right, bottom: whole pixels of the
    upright frame, inside it), only that part of each frame is yielded, cut out by
    ffmpeg as it decodes (a few pixels more, on even coordinates, so that its colours
    are the whole frame's: the chroma planes are not resampled at the cut); ``size``
    and ``region`` don't go together. Raises InputError if the file can't be decoded
    or holds no frame.
    """
    path = Path(path)
    params, cut = None, None
    if size is not None and region is not None:
        raise ValueError("read_frames takes size or region, not both")
    if size is not None:
        params = ["-vf", f"scale={size[0]}:{size[1]}:flags=area"]
    elif region is not None:
        params, cut = _region_filter(region)
    gen, meta = _open_reader(path, params)
    width, height = (int(v) for v in (meta["size"] if size is None else size))
    count = 0
    try:
        for raw in gen:
            if max_frames is not None and count >= max_frames:
                break
            frame = np.frombuffer(raw, dtype=np.uint8)
            if frame.size != width * height * 3:
                break  # a truncated last frame
            count += 1
            if (count - 1) % step == 0:
                frame = frame.reshape(height, width, 3)
                yield frame if cut is None else frame[cut]
    except MemoryError as e:
        raise InputError(f"{path.name} can't be read: decoding it ran out of memory.") from e
    except Exception as e:  # whatever ffmpeg's reader raises mid-stream
        raise InputError(f"{path.name} is damaged: decoding stopped after {count} frames.") from e
    finally:
        gen.close()
    if count == 0:
        raise InputError(f"{path.name} has no video frames.")


_REGION_MARGIN = 4  # pixels around a region ffmpeg cuts as well (chroma interpolation reaches 2)


def _region_filter(region: tuple[int, int, int, int]) -> tuple[list[str], tuple[slice, slice]]:
    """ffmpeg's crop filter for ``region`` with a margin on even coordinates (clipped to
    the frame), and the slice of its frames that is the region."""
    left, top, right, bottom = region
    if not (0 <= left < right and 0 <= top < bottom):
        raise ValueError(f"region {region} is not a box of whole pixels inside the frame")
    x0, y0 = max(0, left - _REGION_MARGIN) // 2 * 2, max(0, top - _REGION_MARGIN) // 2 * 2
    x1, y1 = (-(-(v + _REGION_MARGIN) // 2) * 2 for v in (right, bottom))
    crop = f"crop='min(iw,{x1})-{x0}':'min(ih,{y1})-{y0}':{x0}:{y0}:exact=1"
    return ["-vf", crop], (slice(top - y0, bottom - y0), slice(left - x0, right - x0))


X264_OPTIONS = ("-preset", "ultrafast", "-x264-params", "deblock=1:bframes=3:b-adapt=0")
"""x264's settings (with CRF 18): its fastest preset with the deblocking filter and
three B-frames put back, and CAVLC, its default entropy coder there: about the quality of
preset veryfast at half its CPU time, in larger files. CABAC would change no picture
(the entropy coder is lossless; a test) but costs CPU per bit."""


def ffmpeg_threads() -> int:
    """Threads for x264 and for ffmpeg's decoders: one on machines of up to 4 cores, else
    ffmpeg's own choice (0).

    On a small machine x264's frame threads cost CPU time the engine needs, while one
    thread still encodes far faster than the engine animates; one decoding thread is
    cheaper too.
    """
    return 1 if (os.cpu_count() or 1) <= 4 else 0


ENCODERS = ("auto", "x264", "nvenc")
"""Video encoders: "x264" (the CPU's, :data:`X264_OPTIONS`), "nvenc" (NVIDIA's hardware
encoder, :data:`NVENC_OPTIONS`; x264 where it can't be opened), "auto" (NVENC where the
model runs on a CUDA GPU that has it, else x264)."""

NVENC_OPTIONS = ("-preset", "p1", "-tune", "hq", "-rc", "vbr", "-cq", "19", "-b:v", "0")
"""NVENC's settings: its fastest preset at a constant quality of 19, meant to be near
x264's CRF 18 but not yet measured against it (no GPU with NVENC was at hand; A100, H100
and H200 have none)."""

_REPLAY_FRAMES = 64  # frames kept until NVENC is seen to have opened (the file's header written)


@lru_cache(maxsize=1)
def nvenc_available() -> bool:
    """Whether this ffmpeg can open NVIDIA's H.264 encoder here (its build has it, and a
    GPU with NVENC and its driver are present): a two-frame trial encode, once a process
    (15 ms where there is none)."""
    try:
        result = subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                                 "color=black:s=256x256:r=30", "-frames:v", "2", "-c:v", "h264_nvenc", "-f", "null",
                                 "-"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
    except Exception:  # noqa: BLE001 - any failure to run it means: no NVENC
        return False
    return result.returncode == 0


def _first_words(said: bytes | typing.IO[bytes]) -> str:
    """The first line ffmpeg wrote (where the trouble began) to a pipe's bytes or a
    file, without its "[name @ 0x...]"."""
    if not isinstance(said, bytes):
        said.seek(0)
        said = said.read(4000)
    lines = said.decode("utf-8", "replace").strip().splitlines()
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", lines[0])[:200] if lines else ""


def video_encoder(choice: str, device: str = "cpu") -> str:
    """The encoder ("x264" or "nvenc") for ``choice`` (one of :data:`ENCODERS`) when the
    model runs on ``device`` ("cpu", "cuda", "cuda:1", ...)."""
    if choice not in ENCODERS:
        raise InputError(f"encoder must be one of {', '.join(ENCODERS)}, got {choice!r}.")
    if choice == "auto":
        return "nvenc" if str(device).startswith("cuda") and nvenc_available() else "x264"
    return choice


class VideoWriter:
    """Write (H, W, 3) uint8 RGB frames to an H.264/yuv420p mp4 that browsers play.

    Frames go to a temporary file in the target's folder; :meth:`close` adds the sound
    of ``audio_from`` (if it has any, trimmed to the video) and moves the result into
    place. On error (or :meth:`abort`) nothing is left behind. Use as a context manager.

    The sound is encoded (AAC) by a second ffmpeg while the frames come, at most
    ``audio_seconds`` of it (the longest the video can become; default all), so that
    :meth:`close` only copies both streams into one file. ``encoder`` is "x264" or
    "nvenc"; where NVENC can't be opened (no such GPU, or all its sessions taken) the
    frames so far are encoded again with x264 and :attr:`encoder` says so. An encoder
    that fails otherwise raises :class:`~fomm_space.errors.OutputError`.
    """

    def __init__(self, path: str | Path, fps: float, *, audio_from: str | Path | None = None,
                 audio_seconds: float | None = None, crf: int = 18, encoder: str = "x264"):
        if encoder not in ENCODERS[1:]:
            raise InputError(f"encoder must be x264 or nvenc (video_encoder() picks one), got {encoder!r}.")
        self.path = Path(path)
        self.fps = float(fps)
        self.audio_from = Path(audio_from) if audio_from else None
        self.crf = crf
        self.encoder = encoder
        self.frames = 0
        self._process: subprocess.Popen | None = None
        self._said = None
        self._replay: list[np.ndarray] | None = None
        self._size: tuple[int, int] | None = None
        self._sound: subprocess.Popen | None = None
        self._sound_said = None
        if not self.path.parent.is_dir():
            raise InputError(f"Output folder {self.path.parent} does not exist.")
        self._tmp = self._temporary(".mp4")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp makes it private; the result should not be
        self._sound_file: Path | None = None
        if self.audio_from is not None:
            try:
                self._sound_file = self._temporary(".m4a")
                limit = ["-t", f"{audio_seconds:.6f}"] if audio_seconds is not None else []
                self._sound_said = tempfile.TemporaryFile()
                self._sound = subprocess.Popen(
                    [ffmpeg_exe(), "-y", "-nostdin", "-loglevel", "error", "-threads", "1", *limit,
                     *input_options(self.audio_from), "-i", str(self.audio_from),
                     "-map", "0:a:0", "-vn", "-sn", "-dn", "-c:a", "aac",
                     "-b:a", "160k", "-f", "mp4", str(self._sound_file)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._sound_said)
            except BaseException:
                self.abort()
                raise

    def _temporary(self, suffix: str) -> Path:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=suffix, dir=self.path.parent)
        os.close(fd)
        return Path(tmp)

    def _start(self) -> None:
        """Start the encoding ffmpeg, reading YUV 4:2:0 frames from its stdin."""
        if self.encoder == "nvenc":
            codec = ["-c:v", "h264_nvenc", *NVENC_OPTIONS]
            self._replay = []
        else:
            codec = ["-c:v", "libx264", "-crf", str(self.crf), *X264_OPTIONS, "-threads", str(ffmpeg_threads())]
        w, h = self._size
        rate = Fraction(self.fps).limit_denominator(1001 * 1000)
        self._said = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [ffmpeg_exe(), "-y", "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
             "-s", f"{w}x{h}", "-r", f"{rate.numerator}/{rate.denominator}", "-protocol_whitelist", "pipe",
             "-i", "pipe:0", "-an", *codec,
             "-pix_fmt", "yuv420p", *([] if self._sound else ["-movflags", "+faststart"]),  # else the mux moves it
             "-f", "mp4", str(self._tmp)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._said)

    def _stop(self) -> tuple[int, str]:
        """End the encoding ffmpeg: (its exit status, the first line of what it said)."""
        process, self._process = self._process, None
        try:
            process.stdin.close()
        except Exception:  # noqa: BLE001 - it has gone already; its status says why
            pass
        status = process.wait()
        said = _first_words(self._said)
        self._said.close()
        return status, said.replace(str(self._tmp), self.path.name)

    def _fall_back(self, reason: str) -> None:
        """NVENC could not be opened: the frames so far again, with x264."""
        _logger.warning("NVENC could not be opened (%s); encoding with x264.", reason or "ffmpeg said nothing")
        frames, self._replay = self._replay, None
        self.encoder = "x264"
        self._start()
        for frame in frames:
            self._send(frame)

    def _send(self, yuv: np.ndarray) -> None:
        if self._replay is not None:  # until NVENC is seen to run: it writes the header then
            self._replay.append(yuv)
        try:
            self._process.stdin.write(memoryview(yuv).cast("B"))
        except Exception as e:  # noqa: BLE001 - whatever stopped the encoder, its status says why
            status, said = self._stop()
            if self._replay is not None:
                self._fall_back(said)
                return
            raise OutputError(f"Writing {self.path.name} failed: {said or e}") from e
        if self._replay is not None and (self._tmp.stat().st_size > 0 or len(self._replay) > _REPLAY_FRAMES):
            self._replay = None

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 frame; odd sizes are padded to even by edge copies."""
        import cv2

        if frame.ndim != 3 or frame.shape[2] != 3:
            raise InputError(f"Frames must be (H, W, 3) RGB, got shape {frame.shape}.")
        h, w = frame.shape[:2]
        if self._process is None and self.frames == 0:
            self._size = (w + w % 2, h + h % 2)
            self._start()
        if (w + w % 2, h + h % 2) != self._size:
            raise InputError(f"Frame size {w}x{h} differs from the video's {self._size[0]}x{self._size[1]}.")
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._sound is not None and (why := self._sound_failed()) is not None:  # said now, not at the end
            raise InputError(f"The sound of {self.audio_from.name} can't be read ({why}).")
        # The BT.601 limited-range conversion ffmpeg would make (luma within 1 of it,
        # chroma averaged 2x2 where ffmpeg filters wider), at half the bytes piped and a
        # part of ffmpeg's CPU time.
        self._send(cv2.cvtColor(np.ascontiguousarray(frame, dtype=np.uint8), cv2.COLOR_RGB2YUV_I420))
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        if self._process is None:
            self.abort()
            raise InputError("No frames were written.")
        try:
            status, said = self._stop()
            if status != 0 and self._replay is not None:
                self._fall_back(said)
                status, said = self._stop()
            if status != 0:
                raise OutputError(f"Writing {self.path.name} failed (ffmpeg status {status}): {said}")
            if self._sound is not None:
                self._mux_audio()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def _sound_failed(self) -> str | None:
        """Why the sound's encoding failed, once it has; None while it runs or if it worked."""
        status = self._sound.poll()
        if not status:
            return None
        return _first_words(self._sound_said) or f"status {status}"

    def _mux_audio(self) -> None:
        """Copy the video stream and the sound encoded meanwhile into one file, the sound
        trimmed to the video."""
        self._sound.wait()
        unread = self._sound_failed()
        self._sound = None
        self._sound_said.close()
        if unread is not None:
            self._sound_file.unlink(missing_ok=True)
            raise InputError(f"The sound of {self.audio_from.name} can't be read ({unread}).")
        muxed = self._tmp.with_name(self._tmp.stem + ".a.mp4")
        own = ["-protocol_whitelist", "file", "-f", "mov"]  # both files are our own mp4s
        cmd = [ffmpeg_exe(), "-y", "-nostdin", "-loglevel", "error", *own, "-i", str(self._tmp),
               *own, "-i", str(self._sound_file), "-map", "0:v:0", "-map", "1:a:0", "-c", "copy",
               "-t", f"{self.frames / self.fps:.6f}", "-movflags", "+faststart", str(muxed)]
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        self._sound_file.unlink(missing_ok=True)
        if result.returncode:
            muxed.unlink(missing_ok=True)
            why = _first_words(result.stderr) or f"status {result.returncode}"
            raise InputError(f"Adding the sound failed: {why}")
        os.replace(muxed, self._tmp)

    def abort(self) -> None:
        """Stop and delete the temporary files."""
        for process in (self._process, self._sound):
            if process is not None:
                process.kill()
                process.communicate()
        self._process = self._sound = None
        for said in (self._said, self._sound_said):
            if said is not None:
                said.close()
        if self._sound_file is not None:
            self._sound_file.unlink(missing_ok=True)
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
