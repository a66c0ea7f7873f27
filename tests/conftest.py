"""Shared fixtures: the parity checkpoints (copied from the authors' implementation's
recordings) and small media files made on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
PARITY = DATA / "parity"
MANIFESTS = DATA / "manifests"
# fixture name -> grid_sample align_corners it was recorded with
PARITY_CASES = {"tiny-vox": False, "tiny-mgif": False, "tiny-vox-aligned": True}


@pytest.fixture(scope="session")
def tiny_files() -> tuple[Path, Path]:
    """(config, checkpoint) of the tiny vox-like model."""
    return PARITY / "tiny-vox" / "config.yaml", PARITY / "tiny-vox" / "checkpoint.pth.tar"


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
