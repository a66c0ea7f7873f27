"""Shared fixtures: the parity checkpoints (copied from the authors' implementation's
recordings) and small media files made on the fly."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

_TEMP = pytest.StashKey[tuple[str, set[str], str]]()


def pytest_configure(config):
    """Every temporary file of the session in one folder of its own, removed at the end:
    Python's and subprocesses' (``TMPDIR``: ffmpeg, Chromium), Gradio's uploads and
    results (``GRADIO_TEMP_DIR``, read process-wide, so apps served side by side share
    it), its cached examples, and gradio_client's downloads (it reads the variable when
    imported, after this)."""
    system = tempfile.gettempdir()
    ours = tempfile.mkdtemp(prefix="fomm-space-tests-")
    config.stash[_TEMP] = (system, set(os.listdir(system)), ours)
    os.environ["TMPDIR"] = tempfile.tempdir = ours
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(ours, "gradio")
    os.environ["GRADIO_EXAMPLES_CACHE"] = os.path.join(ours, "examples")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """The session's folder removed, and the run failed if the system's temporary folder
    gained anything (a test or a library that wrote outside its own folder)."""
    system, before, ours = session.config.stash[_TEMP]
    shutil.rmtree(ours, ignore_errors=True)
    left = sorted(set(os.listdir(system)) - before - {os.path.basename(ours)})
    if left:
        print(f"\nThe tests left {len(left)} entries in {system}: {', '.join(left[:10])}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

DATA = Path(__file__).parent / "data"
PARITY = DATA / "parity"
MANIFESTS = DATA / "manifests"
# fixture name -> grid_sample align_corners it was recorded with
PARITY_CASES = {"tiny-vox": False, "tiny-mgif": False, "tiny-vox-aligned": True}
# TPSMM: recorded from the authors' code (../shared/tpsmm-reference), copied here
TPSMM_PARITY = DATA / "tpsmm" / "parity"
TPSMM_MANIFESTS = DATA / "tpsmm" / "manifests"
TPSMM_CASES = ("tiny-tps-vox", "tiny-tps-mgif")


@pytest.fixture(scope="session")
def tiny_files() -> tuple[Path, Path]:
    """(config, checkpoint) of the tiny vox-like model."""
    return PARITY / "tiny-vox" / "config.yaml", PARITY / "tiny-vox" / "checkpoint.pth.tar"


@pytest.fixture(scope="session")
def tiny_tps_files() -> tuple[Path, Path]:
    """(config, checkpoint) of the tiny TPSMM vox-like model (with an AVD network)."""
    return TPSMM_PARITY / "tiny-tps-vox" / "config.yaml", TPSMM_PARITY / "tiny-tps-vox" / "checkpoint.pth.tar"


@pytest.fixture(scope="session")
def tiny_model(tiny_files):
    import fomm_space

    config, checkpoint = tiny_files
    return fomm_space.load_model(config=config, checkpoint=checkpoint, device="cpu", align_corners=False)


def write_video(path: Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    import imageio_ffmpeg

    h, w = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, macro_block_size=1,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


@pytest.fixture()
def media(tmp_path):
    """A 96x128 photo and a 12-frame 64x80 clip of moving blobs."""
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    iio.imwrite(photo, (rng.random((96, 128, 3)) * 255).astype(np.uint8))
    yy, xx = np.mgrid[0:64, 0:80]
    frames = []
    for t in range(12):
        blob = np.exp(-((xx - 20 - 3 * t) ** 2 + (yy - 32) ** 2) / 60.0)
        frames.append((np.stack([blob, 0.5 * blob, 1 - blob], axis=-1) * 255).astype(np.uint8))
    clip = write_video(tmp_path / "clip.mp4", np.stack(frames))
    return photo, clip


@pytest.fixture(scope="session")
def face_weights(tmp_path_factory):
    """face-alignment's two weight files, made here, under a TORCH_HOME set for this
    session (and inherited by subprocesses): its real code runs, nothing is downloaded.

    The S3FD heads are rigged so that every 128-pixel anchor scores as a face: detection
    is deterministic. The FAN landmark network keeps its random initial weights.
    """
    import os

    from benchmarks.bench_live import write_face_weights

    home = tmp_path_factory.mktemp("torch-home")
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    write_face_weights(folder, face_heads=("fc7",))
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("TORCH_HOME", None)
    else:
        os.environ["TORCH_HOME"] = old


class ColourDetector:
    """A deterministic face detector for tests: a "face" is a connected patch of pure
    red pixels; its landmarks are 68 points on the ellipse inscribed in its box, so the
    pose compared by the best-frame search is the patch's aspect ratio."""

    def detect(self, image):
        from skimage.measure import label, regionprops

        from fomm_space.crop import Box

        mask = (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)
        return [Box(r.bbox[1], r.bbox[0], r.bbox[3], r.bbox[2]) for r in regionprops(label(mask))
                if r.area >= 4]

    def landmarks(self, image, face=None):
        """Without ``face``, of the largest patch; with it (a box from an earlier
        detection), of the largest patch seen in that box grown by a quarter (as FAN
        looks at a crop around the box it is given)."""
        from fomm_space.crop import Box, largest

        if face is not None:
            grown = face.square(1.25 * max(face.width, face.height)).clipped(*image.shape[:2])
            left, top, right, bottom = grown.as_ints()
            found = largest(self.detect(image[top:bottom, left:right]))
            face = None if found is None else Box(found.left + left, found.top + top, found.right + left,
                                                  found.bottom + top)
        else:
            face = largest(self.detect(image))
        if face is None:
            return None
        t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        cx, cy = face.center
        return np.stack([cx + face.width / 2 * np.cos(t), cy + face.height / 2 * np.sin(t)], axis=1)


@pytest.fixture()
def colour_detector():
    return ColourDetector()


@pytest.fixture(scope="module")
def app_demo(tiny_files, face_weights):
    """The web demo (tiny checkpoint, CPU) served on a free loopback port."""
    pytest.importorskip("gradio")
    from benchmarks.serve import app_in_process

    with app_in_process(["--config", tiny_files[0], "--checkpoint", tiny_files[1], "--device", "cpu",
                         "--concurrency", "2", "--per-visitor", "4"]) as demo:
        yield demo


@pytest.fixture(scope="module")
def app_url(app_demo):
    return app_demo.local_url
