"""Converting user images to the float RGB arrays the model works on."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import FommError, InputError


def as_float_rgb(image: np.ndarray, *, what: str = "image") -> np.ndarray:
    """Return ``image`` as float32 (H, W, 3) RGB in [0, 1].

    Accepts (H, W) grey, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA (alpha dropped);
    dtype uint8, uint16, bool or float already in [0, 1].
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError(f"The {what} must be an H x W x 3 RGB array, got shape {arr.shape}.")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.bool_:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise InputError(f"The {what} holds NaN or infinite values.")
        lo, hi = float(out.min()), float(out.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise InputError(f"The {what} is float with values in [{lo:.3g}, {hi:.3g}]; "
                             "floats must be in [0, 1] (or pass uint8).")
        out = np.clip(out, 0.0, 1.0)
    else:
        raise InputError(f"The {what} has dtype {arr.dtype}; use uint8, uint16 or float in [0, 1].")
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif out.shape[2] == 4:
        out = out[:, :, :3]
    return np.ascontiguousarray(out)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8, rounding to nearest."""
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


MAX_IMAGE_PIXELS = 50_000_000


def read_image(path: str, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read a photo as (H, W, 3) uint8 RGB, turned upright by its EXIF orientation.

    Grey, palette, RGBA, CMYK and 16-bit images are converted. Images over
    ``max_pixels`` are refused from their header, before they are decoded.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise InputError(f"The image is {w}x{h} pixels; the limit is {max_pixels // 1_000_000} megapixels. "
                                 "Scale it down and try again.")
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                return np.repeat((arr / max(arr.max(), 1) * 255 + 0.5).astype(np.uint8)[:, :, None], 3, axis=2)
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError as e:
        raise InputError(f"Image {path} does not exist.") from e
    except Image.DecompressionBombError as e:
        raise InputError(f"The image has far more pixels than the limit of {max_pixels // 1_000_000} megapixels. "
                         "Scale it down and try again.") from e
    except UnidentifiedImageError as e:
        raise InputError(f"{Path(path).name} is not an image that can be read; use a PNG or JPEG photo.") from e
    except FommError:
        raise
    except MemoryError as e:
        raise InputError(f"{Path(path).name} can't be read: decoding it ran out of memory (a damaged or hostile "
                         "file).") from e
    except Exception as e:  # whatever Pillow's decoders raise on a damaged file
        raise InputError(f"{Path(path).name} can't be read as an image ({type(e).__name__}); use a PNG or JPEG "
                         "photo.") from e


def resize(frame: np.ndarray, size: tuple[int, int], *, fixed_point: bool = False) -> np.ndarray:
    """Resize an (H, W, 3) uint8 frame to (height, width) with anti-aliasing (torch's
    bilinear); uint8 out.

    The default computes in float32 and rounds. ``fixed_point`` uses torch's uint8
    kernel instead (fixed-point weights: within 1 of the float result, at a seventh of
    the CPU time), for the driving video's frames. A frame already at ``size`` is
    returned as it is.
    """
    if frame.shape[:2] == tuple(size):
        return frame
    import torch
    import torch.nn.functional as F

    arr = np.ascontiguousarray(frame)
    x = torch.from_numpy(arr if arr.flags.writeable else arr.copy()).permute(2, 0, 1)[None]
    if fixed_point:
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
        return np.ascontiguousarray(x[0].permute(1, 2, 0).numpy())
    x = F.interpolate(x.float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    # (Not the uint8 kernel here: used for the live camera, it made the app's output of a
    # still camera change from frame to frame at bf16, in the live browser test.)
    return np.ascontiguousarray(x[0].permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8).numpy())


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image (format from the suffix, e.g. .png), atomically:
    to a temporary file beside ``path``, then moved into place."""
    from PIL import Image

    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"Output folder {path.parent} does not exist.")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".png", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, (ValueError, KeyError)):
            raise InputError(f"Can't write {path.name}: use a .png or .jpg name ({e}).") from e
        raise
    return path
